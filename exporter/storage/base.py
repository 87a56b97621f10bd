"""The storage seam: one narrow interface per concern, and ``Store``, one connection's view
of all of them. Writers, jobs and handlers depend on these; each backend (SQLite today)
implements them in its own package. Times are UTC epoch ms; windows are ``[start, end)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from exporter.artifacts import ArtifactState, InflightKey
from exporter.durations import Lookup
from exporter.live.families import Key
from exporter.live.latency import MinuteLatency
from exporter.live.tally import Tally
from exporter.model import Event
from exporter.records import (
    EventFilter,
    FeedPosition,
    GroupRow,
    Horizons,
    InflightFigures,
    JobRun,
    LatencyGroup,
    OrgEntry,
    OrgTotals,
    PartsRow,
    SnapshotRow,
)

T = TypeVar("T")
P = ParamSpec("P")
TakeDigests = Callable[[dict[str, tuple[int, bytes]]], None]
"""Takes a batch of orgs' end-to-end digest runs: org -> (digests, their bytes joined)."""
TakeParts = Callable[[list[PartsRow]], None]
"""Takes a batch of snapshot parts rows (``Snapshots.read_parts``): each scope's rows in
start order, and once a batch is taken every scope but its last row's has had all its rows
(one batch of everything, or each scope's rows together)."""


class Events(Protocol):
    """Raw events: dedup, insert (extending the history start), lookups, retention, a
    note's timeline and the recent-events feed (newest received first)."""

    def existing_ids(self, event_ids: Sequence[str]) -> set[str]: ...
    def latest_starts(self, lookups: Sequence[Lookup]) -> dict[Lookup, int]: ...
    def insert(self, events: Iterable[Event], received_ms: int) -> int: ...
    def insert_new(self, events: Sequence[Event], received_ms: int) -> bool: ...
    def count(self) -> int: ...
    def delete_before(self, cutoff_ms: int, limit: int) -> int: ...
    def count_before(self, cutoff_ms: int) -> int: ...
    def timeline(self, artifact_id: str, limit: int) -> list[dict[str, Any]]: ...
    def recent(
        self, filters: EventFilter, before: FeedPosition | None, limit: int
    ) -> list[dict[str, Any]]: ...


class LiveState(Protocol):
    """Persisted live state: counters, maxima, window minutes, first-seen organisations,
    and the change journal replicas share (``exporter.live.journal``; storage one daemon
    owns keeps none: ``journal`` returns None, ``journal_since`` nothing)."""

    def save_tally(self, tally: Tally) -> int: ...
    def register_orgs(self, orgs: Iterable[str]) -> int: ...
    def load_counters(self, table: str) -> dict[Key, float]: ...
    def load_minutes(self, since_ms: int) -> dict[tuple[str, int, str], float]: ...
    def load_latency(self, since_ms: int, gamma: float, floor_ms: float) -> list[MinuteLatency]: ...
    def load_orgs(self, limit: int) -> tuple[list[str], int]: ...
    def prune_minutes(self, before_ms: int) -> int: ...
    def journal(self, body: bytes, at_ms: int) -> int | None: ...
    def journal_since(self, after_id: int) -> tuple[int, list[tuple[int, bytes]]]: ...
    def journal_head(self) -> int: ...
    def prune_journal(self, before_ms: int) -> None: ...


class Snapshots(Protocol):
    """Snapshot rows, the hourly aggregation queries, dirty windows, snapshot retention."""

    def group_rows(self, start_ms: int, end_ms: int) -> list[GroupRow]: ...
    def hourly_aggregates(
        self, start_ms: int, end_ms: int, gamma: float, floor_ms: float
    ) -> tuple[list[GroupRow], list[LatencyGroup]]: ...
    def latency_groups(
        self, start_ms: int, end_ms: int, gamma: float, floor_ms: float
    ) -> list[LatencyGroup]: ...
    def replace_snapshots(
        self, period: str, period_start_ms: int, rows: Sequence[SnapshotRow]
    ) -> None: ...
    def snapshot_rows(
        self, period: str, start_ms: int, end_ms: int, scope: str | None = None
    ) -> list[SnapshotRow]: ...
    def read_parts(self, period: str, start_ms: int, end_ms: int, take: TakeParts) -> None: ...
    def platform_starts(self, period: str, since_ms: int) -> set[int]: ...
    def has_snapshot(self, period: str, period_start_ms: int) -> bool: ...
    def mark_dirty(self, period: str, starts: Iterable[int]) -> None: ...
    def dirty_starts(self, period: str) -> set[int]: ...
    def dirty_generation(self, period: str, period_start_ms: int) -> int | None: ...
    def clear_dirty(self, period: str, period_start_ms: int, generation: int | None) -> None: ...
    def count_snapshots(self) -> dict[str, int]: ...
    def delete_snapshots_before(self, period: str, cutoff_ms: int, limit: int) -> int: ...
    def count_snapshots_before(self, period: str, cutoff_ms: int) -> int: ...
    def delete_dirty_before(self, period: str, cutoff_ms: int) -> int: ...
    def org_totals(
        self, period: str, start_ms: int, end_ms: int, limit: int
    ) -> list[OrgTotals]: ...
    def end_to_end_digests(
        self, period: str, start_ms: int, end_ms: int, org_ids: Sequence[str], take: TakeDigests
    ) -> None: ...


class JobRuns(Protocol):
    """The last run of each job and its run counts, whoever ran it."""

    def record_run(self, run: JobRun) -> JobRun: ...
    def load_runs(self, job: str | None = None) -> dict[str, JobRun]: ...


class Artifacts(Protocol):
    """The artifact state read model."""

    def load_states(self, artifact_ids: Sequence[str]) -> dict[str, ArtifactState]: ...
    def save_states(self, states: Iterable[ArtifactState]) -> None: ...
    def add_inflight(self, delta: Mapping[InflightKey, int]) -> None: ...
    def rebuild_inflight(self) -> None: ...
    def inflight_figures(self, stuck_before_ms: int) -> InflightFigures: ...
    def list_states(
        self,
        status: str,
        after: str | None,
        limit: int,
        idle_before_ms: int | None = None,
        *,
        org_id: str | None = None,
        stage: str | None = None,
    ) -> list[ArtifactState]: ...
    def delete_before(self, cutoff_ms: int, limit: int) -> int: ...
    def count_before(self, cutoff_ms: int) -> int: ...


class Orgs(Protocol):
    """Organisation display names, and every organisation seen or named."""

    def put_org_name(self, org_id: str, name: str, now_ms: int) -> None: ...
    def org_names(self, org_ids: Sequence[str] | None = None) -> dict[str, str]: ...
    def find_org(self, org_id: str) -> OrgEntry | None: ...
    def list_orgs(self, after: str | None, limit: int) -> list[OrgEntry]: ...


class HorizonRows(Protocol):
    """What the stored data is complete for (see ``exporter.records.Horizons``)."""

    def load(self) -> Horizons: ...
    def extend_history(self, start_ms: int) -> None: ...
    def raise_watermark(self, name: str, ms: int) -> None: ...


class Store(Protocol):
    """One connection's view of every concern, with its transactions."""

    @property
    def events(self) -> Events: ...

    @property
    def live(self) -> LiveState: ...

    @property
    def snapshots(self) -> Snapshots: ...

    @property
    def job_runs(self) -> JobRuns: ...

    @property
    def artifacts(self) -> Artifacts: ...

    @property
    def orgs(self) -> Orgs: ...

    @property
    def horizons(self) -> HorizonRows: ...

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction: commits on exit, rolls back on any exception."""
        ...

    def read_transaction(self) -> AbstractContextManager[None]:
        """A consistent snapshot for the reads inside (never blocks the writer)."""
        ...


class Runner(Protocol):
    """Runs storage functions where their connection lives: ``await run(fn, *args)`` from
    the event loop, ``call(fn, *args)`` from another worker thread (a job's writes)."""

    async def run(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...

    def call(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...


class Writes(Runner, Protocol):
    """The write path's runner; ``reopen()`` replaces its connection after a failure a
    fresh connection may not have (read-only file, I/O error, server gone)."""

    async def reopen(self) -> None: ...


class HealthChecks(Protocol):
    """How a backend proves it can commit (the storage probe) and names its failures."""

    def classify(self, exc: BaseException) -> str | None:
        """The storage failure kind of ``exc`` (``exporter.storage.errors.KINDS``)."""
        ...

    def prepare(self, store: Store) -> None:
        """Create what the heartbeat writes (on the write connection, at start)."""
        ...

    def beat(self, store: Store, now_ms: int) -> None:
        """One real write transaction."""
        ...

    def verify(self, store: Store) -> None:
        """After a commit: raise when it landed where no reader will look (SQLite: the file
        was replaced), after rescuing what it can."""
        ...

    def before_reopen(self) -> None:
        """Raise when a reopen would reach other storage than the one opened."""
        ...

    def integrity(self) -> str | None:
        """A full integrity check of the stored data (minutes on a huge SQLite file; runs on a
        thread of its own): '' when sound, the first problem found, None when stopped or
        when the backend has nothing to check."""
        ...

    def stop_integrity(self) -> None:
        """Make a running ``integrity`` return None soon (shutdown)."""
        ...


class Reader(Protocol):
    """Runs read-only storage functions (a pool: calls may run concurrently)."""

    async def run(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T: ...


class Leadership(Protocol):
    """Which replica runs the scheduled jobs: always this one on storage one daemon owns;
    on shared storage, the replica holding the job lock."""

    @property
    def leading(self) -> bool: ...

    async def hold(self) -> bool:
        """Keep, or try to take, the job lock: True while this replica leads."""
        ...


class Backend(Protocol):
    """A storage backend at run time. ``writes``: the one write path (ingest commits and
    job writes queue on it); ``rollup_reads``: the rollup jobs' reads, on their own
    connection; ``reads``: queries, never waiting behind either. ``shared``: replicas
    share this storage (the change journal is kept and followed)."""

    @property
    def writes(self) -> Writes: ...

    @property
    def rollup_reads(self) -> Runner: ...

    @property
    def reads(self) -> Reader: ...

    @property
    def checks(self) -> HealthChecks: ...

    @property
    def leadership(self) -> Leadership: ...

    @property
    def shared(self) -> bool: ...

    async def measure_size(self) -> int: ...
    async def close(self) -> None: ...
