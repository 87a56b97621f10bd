"""The batch-1000 ingest commit in-process, on one thread, against raw inserts of the same
rows: where a commit's time goes, and how fast it could be with each of voxmon's own parts
left out (issue 15's ingest profile, reproducible). SQLite by default; PostgreSQL with
``--database-url``.

No HTTP, no event loop, no second thread: the figures are the writer's own ceiling. The
events are ``benchmarks/ingest.py``'s (notes of 50 orgs through the pipeline, UUID ids,
interleaved by time), validated as the daemon validates them, outside the timing; by default
as many as its batch-1000 scenario posts, so the files grow alike and raw rates compare. Each
variant gets a fresh database (SQLite: ``connect``, the daemon's schema and pragmas,
synchronous=FULL, WAL; PostgreSQL: a throwaway database with voxmon's schema and the day
partitions created before the timing) and the same commits of ``--commit`` events (two
requests of half as many each, as the daemon's group commit takes them at batch 1000):

- ``raw``: the rows alone, a transaction per request as the ingest benchmarks' raw rates
  insert them (SQLite: ``SqliteEvents.insert``, as ``benchmarks/ingest.py``; PostgreSQL:
  COPY of the rows and their dedup keys built before the timing, as
  ``benchmarks/replicas.py``). The goals' denominator, and the ratios' here;
- ``raw, a transaction per commit``: the same rows in as many transactions as voxmon's;
- ``voxmon``: ``exporter.ingest.commit.commit`` as the writer runs it (on PostgreSQL with
  the change journal a replica keeps);
- ``no read model``: the same with the notes' states left out (load, fold, save and the
  in-flight counts);
- ``no read model, no counters``: also without the live counters (tally, save, journal);
- ``events only``: also without derived durations and late-hour marks: what the commit's
  own bookkeeping (admit, insert, horizons) costs beside raw's insert.

The last three are not voxmon: they leave out what it must store in the same transaction
(the counters, persisted with the events they count) or what its read model needs, and
show what doing that work costs. A second table times each part of the full commit on one
more, instrumented round (wall clock; what no part accounts for is the commit's own Python
between them). Variants run in turn, ``--rounds`` times; medians are printed, with this
thread's CPU and, on PostgreSQL on this machine, the server backend's. SQLite files are
deleted after each run; PostgreSQL's throwaway databases are dropped, on SIGTERM too.

Run: ``.venv/bin/python benchmarks/commit.py [--events N] [--commit N] [--rounds N]
[--database-url URL] [--json]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from benchmarks.databases import cpu_delta  # noqa: E402
from benchmarks.ingest import (  # noqa: E402
    encode_batches,
    make_events,
    unwind_on_sigterm,
    validated,
)
from exporter.ingest import commit as commit_module  # noqa: E402
from exporter.live.orgs import OrgRegistry  # noqa: E402
from exporter.live.tally import tally as full_tally  # noqa: E402
from exporter.live.windows import window_bounds  # noqa: E402
from exporter.model import Event  # noqa: E402
from exporter.settings import Settings  # noqa: E402
from exporter.storage.sqlite.connection import connect  # noqa: E402
from exporter.storage.sqlite.store import SqliteStore  # noqa: E402

Commits = list[list[Sequence[Event]]]
"""Each commit: the requests it takes together."""
Skip = Callable[[Any], contextlib.AbstractContextManager[Any]]
"""Leaves one part of the commit out, on the store given."""


def _no_read_model(store: Any) -> contextlib.AbstractContextManager[Any]:
    return mock.patch.object(commit_module, "_advance_artifacts", lambda store, events: None)


def _no_counters(store: Any) -> contextlib.AbstractContextManager[Any]:
    """An empty tally, not saved (nor journalled: a journal entry needs new events)."""
    patches = contextlib.ExitStack()
    patches.enter_context(
        mock.patch.object(
            commit_module, "tally", lambda events, start, orgs: full_tally([], start, orgs)
        )
    )
    patches.enter_context(mock.patch.object(store.live, "save_tally", lambda counted: 0))
    patches.enter_context(mock.patch.object(store.live, "journal", lambda body, at_ms: None))
    return patches


def _no_durations_or_marks(store: Any) -> contextlib.AbstractContextManager[Any]:
    patches = contextlib.ExitStack()
    patches.enter_context(
        mock.patch.object(
            commit_module,
            "_derive_durations",
            lambda store, events, limit: (events, Counter()),
        )
    )
    patches.enter_context(mock.patch.object(commit_module, "_late_hours", lambda e, now: set()))
    return patches


RAW_PER_COMMIT = "raw, a transaction per commit"
VARIANTS: dict[str, tuple[Skip, ...] | None] = {
    "raw": None,
    RAW_PER_COMMIT: None,
    "voxmon": (),
    "no read model": (_no_read_model,),
    "no read model, no counters": (_no_read_model, _no_counters),
    "events only": (_no_read_model, _no_counters, _no_durations_or_marks),
}
"""None: raw inserts; otherwise the parts left out of voxmon's commit."""


class Sqlite:
    """Fresh files in a temporary directory, with the daemon's schema and pragmas; each is
    deleted after its run unless ``keep``."""

    name = "SQLite"

    def __init__(self, tmp: Path, *, keep: bool = False) -> None:
        self._tmp, self._keep, self.files = tmp, keep, 0

    @contextlib.contextmanager
    def store(self) -> Iterator[SqliteStore]:
        self.files += 1
        path = self._tmp / f"{self.files}.db"
        store = SqliteStore(connect(path))
        try:
            yield store
        finally:
            store.close()
            if not self._keep:
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)

    def encode(self, rows: list[Event], received_ms: int) -> Any:
        return rows  # SqliteEvents.insert builds the rows in its timing, as in ingest.py

    def raw(self, store: Any, encoded: Any, received_ms: int) -> None:
        with store.transaction():
            store.events.insert(encoded, received_ms)

    def server_cpu(self, store: Any) -> dict[int, float]:
        return {}  # SQLite runs in this thread: its CPU is the thread's


class Postgres:
    """A fresh database per run on the server of ``--database-url`` (reached when this is
    made); the day partitions are created before the timing for raw and voxmon alike."""

    name = "PostgreSQL"

    def __init__(self, url: str) -> None:
        from benchmarks.databases import Server

        self._server, self._runs = Server(url), 0

    @contextlib.contextmanager
    def store(self) -> Iterator[Any]:
        from exporter.storage.postgres.connection import connect as pg_connect
        from exporter.storage.postgres.store import PgStore

        self._runs += 1
        with self._server.database(f"commit{self._runs}") as url:
            store = PgStore(pg_connect(url), "bench")
            try:
                yield store
            finally:
                store.close()

    def encode(self, rows: list[Event], received_ms: int) -> Any:
        """The rows and their dedup keys, built before the timing as ``replicas.py`` does."""
        from benchmarks.replicas import copy_rows

        return copy_rows(rows, received_ms)

    def raw(self, store: Any, encoded: Any, received_ms: int) -> None:
        """Raw COPY of the rows and their dedup keys (``benchmarks/replicas.py``'s)."""
        from benchmarks.replicas import insert_copy

        with store.connection.transaction():
            insert_copy(store.connection, *encoded)

    def server_cpu(self, store: Any) -> dict[int, float]:
        """The backend's CPU seconds; none where ``/proc`` does not show it (a remote server)."""
        from benchmarks.databases import backend_cpu_seconds

        return backend_cpu_seconds([store.connection.info.backend_pid])


Backend = Sqlite | Postgres


def prepare(store: Any, commits: Commits) -> None:
    """Untimed: PostgreSQL's day partitions for every event (SQLite has none)."""
    partitions = getattr(store.events, "partitions", None)
    if partitions is not None:
        partitions.ensure({e.ts_ms for requests in commits for r in requests for e in r})


Run = tuple[float, float, float | None]
"""(wall s, this thread's CPU s, the database server's CPU s or None: not measured)."""


def _server_delta(before: dict[int, float], after: dict[int, float]) -> float | None:
    """The server's CPU seconds between the readings; None when it is not measured."""
    return cpu_delta(before, after) if before else None


def run_raw(backend: Backend, commits: Commits, per_commit: bool = False) -> Run:
    """Each request's rows alone in a transaction of their own, as the ingest benchmarks'
    raw rates insert them (the goals' denominator); with ``per_commit``, each commit's rows
    (as many transactions as voxmon's commit)."""
    received_ms = time.time_ns() // 1_000_000
    groups = (
        [[e for request in requests for e in request] for requests in commits]
        if per_commit
        else [list(request) for requests in commits for request in requests]
    )
    encoded = [backend.encode(rows, received_ms) for rows in groups]
    with backend.store() as store:
        prepare(store, commits)
        server, wall, cpu = backend.server_cpu(store), time.perf_counter(), time.thread_time()
        for rows in encoded:
            backend.raw(store, rows, received_ms)
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        return wall, cpu, _server_delta(server, backend.server_cpu(store))


def run_voxmon(
    backend: Backend,
    commits: Commits,
    skips: Sequence[Skip],
    timers: Timers | None = None,
) -> Run:
    """The writer's commit on each, with ``skips`` applied, called as the writer calls it
    (``exporter.ingest.writer``): the live window's start, its old minutes pruned when the
    window moved, the organisations registered after each commit and, on PostgreSQL, the
    journal a replica keeps (one replica: no other replica's entries to read)."""
    settings = Settings()
    orgs = OrgRegistry(settings.max_live_orgs, settings.max_org_series)
    shared = isinstance(backend, Postgres)
    with backend.store() as store, contextlib.ExitStack() as patches:
        prepare(store, commits)
        for skip in skips:
            patches.enter_context(skip(store))
        if timers is not None:
            patches.enter_context(timers.installed(store))
        applied, pruned_before = (0 if shared else None), 0
        server, wall, cpu = backend.server_cpu(store), time.perf_counter(), time.thread_time()
        for requests in commits:
            now_ms = time.time_ns() // 1_000_000
            window_start = window_bounds(now_ms).start_ms
            prune = window_start if window_start > pruned_before else None
            outcome = commit_module.commit(
                store, requests, now_ms, window_start, orgs, prune, settings.max_duration_ms,
                applied,
            )  # fmt: skip
            pruned_before = prune or pruned_before
            orgs.register(outcome.tally.new_orgs, outcome.tally.orgs_added)
            if shared and outcome.entry_id is not None:
                applied = outcome.entry_id
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        return wall, cpu, _server_delta(server, backend.server_cpu(store))


class Timers:
    """Wall clock spent in each part of the full commit, summed over a round; what no part
    accounts for (the commit's own Python between them) is reported as such."""

    PARTS: ClassVar[dict[str, tuple[str, str]]] = {
        "events insert (incl. dedup check)": ("events", "insert_new"),
        "derived-duration lookup": ("events", "latest_starts"),
        "artifact states load": ("artifacts", "load_states"),
        "artifact states save": ("artifacts", "save_states"),
        "in-flight counts": ("artifacts", "add_inflight"),
        "live tally save": ("live", "save_tally"),
        "live window prune": ("live", "prune_minutes"),
        "journal read (PostgreSQL)": ("live", "journal_since"),
        "journal prune (PostgreSQL)": ("live", "prune_journal"),
        "journal append (PostgreSQL)": ("live", "journal"),
        "late-hour marks": ("snapshots", "mark_dirty"),
        "horizons read": ("horizons", "load"),
    }
    FUNCTIONS: ClassVar[dict[str, str]] = {
        "artifact fold (Python)": "fold",
        "tally (Python)": "tally",
    }

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def _timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started

        return timed

    @contextlib.contextmanager
    def installed(self, store: Any) -> Iterator[None]:
        with contextlib.ExitStack() as patches:
            for name, (part, method) in self.PARTS.items():
                target = getattr(store, part)
                timed = self._timed(name, getattr(target, method))
                patches.enter_context(mock.patch.object(target, method, timed))
            for name, function in self.FUNCTIONS.items():
                timed = self._timed(name, getattr(commit_module, function))
                patches.enter_context(mock.patch.object(commit_module, function, timed))
            patches.enter_context(
                mock.patch.object(store, "transaction", self._timed_ends(store.transaction))
            )
            yield

    def _timed_ends(self, transaction: Callable[[], Any]) -> Callable[[], Any]:
        @contextlib.contextmanager
        def timed() -> Iterator[None]:
            started = time.perf_counter()
            with transaction():
                self.seconds["BEGIN (on PostgreSQL: and the write lock)"] += (
                    time.perf_counter() - started
                )
                yield
                started = time.perf_counter()
            self.seconds["COMMIT"] += time.perf_counter() - started

        return timed

    def close(self, wall: float) -> None:
        """The round took ``wall`` seconds: what the parts leave is the commit's own Python
        between them, the loop's around the commits and the timers' own."""
        self.seconds["not attributed (Python between the parts, the timers')"] = wall - sum(
            self.seconds.values()
        )


def make_commits(count: int, per_commit: int) -> Commits:
    """``count`` events in commits of ``per_commit`` (two requests of half as many each; a
    last commit may hold fewer), validated."""
    half = per_commit // 2
    requests: list[Sequence[Event]] = []
    requests += validated(encode_batches(make_events(count, "commit"), half))
    return [requests[i : i + 2] for i in range(0, len(requests), 2)]


def measure(backend: Backend, commits: Commits, rounds: int) -> tuple[dict[str, list[Run]], Timers]:
    """Every variant ``rounds`` times in turn, each on a fresh database; then one
    instrumented round of the full commit."""
    runs: dict[str, list[Run]] = defaultdict(list)
    for _ in range(rounds):
        for name, skips in VARIANTS.items():
            if skips is None:
                runs[name].append(run_raw(backend, commits, name == RAW_PER_COMMIT))
            else:
                runs[name].append(run_voxmon(backend, commits, skips))
    timers = Timers()
    timers.close(run_voxmon(backend, commits, (), timers)[0])
    return runs, timers


def _median(values: list[float | None]) -> float | None:
    return None if None in values else statistics.median(v for v in values if v is not None)


def report(commits: Commits, runs: dict[str, list[Run]], timers: Timers) -> dict[str, Any]:
    events = sum(len(r) for requests in commits for r in requests)
    variants: dict[str, dict[str, Any]] = {}
    for name, samples in runs.items():
        wall, cpu, server = (_median([run[i] for run in samples]) for i in range(3))
        assert wall is not None and cpu is not None
        variants[name] = {
            "events_per_s": events / wall,
            "us_per_event": 1e6 * wall / events,
            "cpu_us_per_event": 1e6 * cpu / events,
            "server_cpu_us_per_event": None if server is None else 1e6 * server / events,
        }
    for figures in variants.values():
        figures["ratio"] = variants["raw"]["us_per_event"] / figures["us_per_event"]
    instrumented = sum(timers.seconds.values())
    parts = sorted(timers.seconds.items(), key=lambda kv: -kv[1])
    return {
        "events": events,
        "commits": len(commits),
        "variants": variants,
        "parts_us_per_event": {name: 1e6 * seconds / events for name, seconds in parts},
        "instrumented_us_per_event": 1e6 * instrumented / events,
    }


def print_report(label: str, result: dict[str, Any], rounds: int) -> None:
    print(
        f"{label}: {result['events']:,} events in {result['commits']} commits, medians of"
        f" {rounds} rounds, one thread, no HTTP; / raw: against a transaction per request\n"
    )
    print("| variant | events/s | / raw | µs/event | CPU µs/event | server CPU µs/event |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, v in result["variants"].items():
        server = v["server_cpu_us_per_event"]
        print(
            f"| {name} | {v['events_per_s']:,.0f} | {v['ratio']:.2f} x | {v['us_per_event']:.1f}"
            f" | {v['cpu_us_per_event']:.1f} | {'-' if server is None else f'{server:.1f}'} |"
        )
    print("\nThe full commit part by part (one more round, instrumented; wall clock):\n")
    print("| part | µs/event |")
    print("|---|---:|")
    for name, us in result["parts_us_per_event"].items():
        print(f"| {name} | {us:.1f} |")
    print(f"| = the instrumented round | {result['instrumented_us_per_event']:.1f} |\n")


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--commit", type=int, default=2_000, help="events per commit (even)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="measure PostgreSQL (postgresql://...) instead")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for wrong, why in (
        (args.commit < 2 or args.commit % 2, "--commit must be even and >= 2 (two requests)"),
        (args.events < args.commit, "--events must be >= --commit"),
        (args.rounds < 1, "--rounds must be >= 1"),
    ):
        if wrong:
            parser.error(why)
    return args


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    unwind_on_sigterm()  # the throwaway databases are dropped, the files removed
    try:
        with contextlib.ExitStack() as stack:
            backend: Backend
            if args.database_url:
                backend = Postgres(args.database_url)  # the server is reached first
            else:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="voxmon-commit-"))
                backend = Sqlite(Path(tmp))
            commits = make_commits(args.events, args.commit)
            runs, timers = measure(backend, commits, args.rounds)
    except (OSError, ValueError, psycopg.Error) as exc:
        print(f"commit benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    result = report(commits, runs, timers)
    print_report(backend.name, result, args.rounds)
    if args.json:
        print(json.dumps({"backend": backend.name, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
