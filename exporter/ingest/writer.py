"""The ingest writer: a bounded queue drained by one task doing group commits.

Many concurrent requests share one transaction; each is acknowledged only after that
transaction commits. Dedup, derived durations, events, counters and window buckets are
written together, then the same tally is applied to the live state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from exporter import durations
from exporter.artifacts import ArtifactState, fold
from exporter.clock import Clock
from exporter.errors import CommitFailed, Unavailable
from exporter.health import StorageHealth
from exporter.live.orgs import OrgRegistry
from exporter.live.state import LiveState
from exporter.live.tally import Tally, tally
from exporter.live.windows import window_bounds
from exporter.model import Event
from exporter.selfmetrics import SelfMetrics
from exporter.settings import Settings
from exporter.storage.base import Runner, Store
from exporter.timestamps import HOUR_MS, datetime_to_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommitResult:
    """Outcome of one request's events: newly stored, already-known (duplicates), and the
    positions of events refused because retention already pruned what their snapshots
    are computed from (event time before ``events_from_ms``, ``Horizons.accept_from_ms``
    read in the commit's own transaction)."""

    accepted: int
    duplicates: int
    pruned: tuple[int, ...] = ()
    events_from_ms: int = 0


@dataclass(slots=True)
class _Job:
    events: Sequence[Event]
    future: asyncio.Future[CommitResult] = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Outcome:
    results: list[CommitResult]
    tally: Tally
    artifacts: list[ArtifactState]
    discarded: Counter[str]
    """Derived durations left unset as over the maximum, by the source they would have had."""


class IngestWriter:
    """Accepts validated events, commits them in groups, updates the live state."""

    def __init__(
        self,
        db: Runner,
        live: LiveState,
        metrics: SelfMetrics,
        clock: Clock,
        *,
        health: StorageHealth,
        max_queue_events: int,
        max_commit_events: int,
        retry_after_s: int,
        event_retention_ms: int,
        max_duration_ms: int,
    ) -> None:
        self._db = db
        self._live = live
        self._metrics = metrics
        self._clock = clock
        self._health = health
        self._max_queue = max_queue_events
        self._max_commit = max_commit_events
        self._retry_after = retry_after_s
        self._event_retention_ms = event_retention_ms
        self._max_duration_ms = max_duration_ms
        self._pending: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._pruned_before = 0
        self.queued_events = 0

    @classmethod
    def for_settings(
        cls,
        db: Runner,
        live: LiveState,
        metrics: SelfMetrics,
        clock: Clock,
        health: StorageHealth,
        settings: Settings,
    ) -> IngestWriter:
        return cls(
            db,
            live,
            metrics,
            clock,
            health=health,
            max_queue_events=settings.queue_max_events,
            max_commit_events=settings.commit_max_events,
            retry_after_s=settings.retry_after_s,
            event_retention_ms=settings.event_retention_hours * 3_600_000,
            max_duration_ms=settings.max_duration_ms,
        )

    async def submit(self, events: Sequence[Event]) -> CommitResult:
        """Queue events and wait until they are committed. Raises ``Unavailable`` (503)
        when the queue is full, the writer is shutting down, storage cannot commit, or the
        commit failed."""
        if self._closing:
            raise Unavailable("voxmon is shutting down", self._retry_after)
        if not self._health.healthy:
            raise self._health.refusal()
        if self.queued_events and self.queued_events + len(events) > self._max_queue:
            raise Unavailable(
                f"ingest queue is full ({self.queued_events} events waiting); retry later",
                self._retry_after,
            )
        future: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self._pending.append(_Job(events, future))
        self.queued_events += len(events)
        self._wakeup.set()
        return await future

    async def run(self) -> None:
        """Commit queued jobs until ``stop()`` is called and the queue is empty."""
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._commit_jobs(self._take())

    def stop(self) -> None:
        """Refuse new work; ``run()`` returns once everything queued is committed."""
        self._closing = True
        self._wakeup.set()

    def _take(self) -> list[_Job]:
        jobs = [self._pending.popleft()]
        size = len(jobs[0].events)
        while self._pending and size + len(self._pending[0].events) <= self._max_commit:
            job = self._pending.popleft()
            jobs.append(job)
            size += len(job.events)
        return jobs

    async def _commit_jobs(self, jobs: list[_Job]) -> None:
        size = sum(len(job.events) for job in jobs)
        if not self._health.healthy:  # queued before storage failed: fail fast, like new work
            self._finish(jobs, size, error=self._health.refusal())
            return
        now_ms = datetime_to_ms(self._clock.now())
        window_start = window_bounds(now_ms).start_ms
        prune_before = window_start if window_start > self._pruned_before else None
        started = self._clock.monotonic()
        try:
            outcome = await self._db.run(
                self._health.checked(_commit),
                [job.events for job in jobs],
                now_ms,
                window_start,
                self._live.orgs,
                prune_before,
                self._max_duration_ms,
            )
        except Exception as exc:  # the writer must outlive any one commit, or requests hang
            kind = self._health.record(exc)  # storage failures: 503 until a probe commits
            if kind is None and len(jobs) > 1:  # isolate the request that carries the fault
                log.warning("commit of %d requests failed (%s); retrying them one by one",
                            len(jobs), exc)  # fmt: skip
                for job in jobs:
                    await self._commit_jobs([job])
                return
            log.error("commit of %d events failed: %s", size, exc, exc_info=kind is None)
            self._finish(jobs, size, error=self._health.refusal() if kind else self._failed(exc))
            return
        if prune_before is not None:
            self._pruned_before = prune_before
            self._live.inflight.prune(now_ms - self._event_retention_ms)
        self._live.apply(outcome.tally, now_ms)
        self._live.inflight.apply(outcome.artifacts)
        for source, n in outcome.discarded.items():
            self._metrics.durations_discarded.labels(source).inc(n)
        self._metrics.commit_seconds.observe(self._clock.monotonic() - started)
        self._metrics.commit_events.observe(size)
        self._finish(jobs, size, results=outcome.results)

    def _failed(self, exc: Exception) -> CommitFailed:
        """This request alone cannot be stored and storage is fine: voxmon's own bug (every
        value that validation lets through must be storable). Counted like any 500."""
        self._metrics.internal_errors.inc()
        return CommitFailed(
            f"this request's events could not be stored ({type(exc).__name__}: {exc});"
            " other requests were not affected. This is a voxmon bug: please report it"
        )

    def _finish(
        self,
        jobs: list[_Job],
        size: int,
        results: list[CommitResult] | None = None,
        error: Exception | None = None,
    ) -> None:
        self.queued_events -= size
        for index, job in enumerate(jobs):
            if job.future.done():  # the request went away; its events are committed anyway
                continue
            if results is not None:
                job.future.set_result(results[index])
            else:
                job.future.set_exception(error or RuntimeError("commit failed"))


def _commit(
    store: Store,
    batches: list[Sequence[Event]],
    now_ms: int,
    window_start_ms: int,
    orgs: OrgRegistry,
    prune_before_ms: int | None,
    max_duration_ms: int,
) -> _Outcome:
    """One transaction for several requests (runs on the database thread)."""
    with store.transaction():
        events_from = store.horizons.load().accept_from_ms
        ids = [event.event_id for batch in batches for event in batch]
        seen = store.events.existing_ids(ids)
        results: list[CommitResult] = []
        fresh: list[Event] = []
        for batch in batches:
            before, pruned = len(fresh), []
            for position, event in enumerate(batch):
                if event.ts_ms < events_from:  # its hour can't be rolled up: refuse, never forget
                    pruned.append(position)
                elif event.event_id not in seen:
                    seen.add(event.event_id)
                    fresh.append(event)
            accepted = len(fresh) - before
            duplicates = len(batch) - accepted - len(pruned)
            results.append(CommitResult(accepted, duplicates, tuple(pruned), events_from))
        fresh, discarded = _derive_durations(store, fresh, max_duration_ms)
        counted = tally(fresh, window_start_ms, orgs)
        store.events.insert(fresh, now_ms)
        counted.orgs_added = store.live.save_tally(counted)
        if prune_before_ms is not None:
            store.live.prune_minutes(prune_before_ms)
        store.snapshots.mark_dirty("hourly", _late_hours(fresh, now_ms))
        states = _advance_artifacts(store, fresh)
    return _Outcome(results, counted, states, discarded)


def _advance_artifacts(store: Store, events: list[Event]) -> list[ArtifactState]:
    """Fold the events into the artifact read model (same transaction)."""
    touched = sorted({e.artifact_id for e in events if e.artifact_id})
    if not touched:
        return []
    changed = fold(store.artifacts.load_states(touched), events)
    store.artifacts.save_states(changed.values())
    return list(changed.values())


def _late_hours(events: Sequence[Event], now_ms: int) -> set[int]:
    """Starts of already-closed hours these events fall in. The rollup re-aggregates them
    (a mark for an hour not yet aggregated is harmless: it is aggregated anyway)."""
    current = now_ms - now_ms % HOUR_MS
    return {e.ts_ms - e.ts_ms % HOUR_MS for e in events if e.ts_ms < current}


def _derive_durations(
    store: Store, events: list[Event], max_duration_ms: int
) -> tuple[list[Event], Counter[str]]:
    lookups = [lookup for event in events if (lookup := durations.lookup_for(event))]
    if not lookups:
        return events, Counter()
    found = durations.starts_in_batch(events, lookups)
    for lookup, stored in store.events.latest_starts(lookups).items():
        if stored > found.get(lookup, stored - 1):
            found[lookup] = stored
    return durations.apply_starts(events, found, max_duration_ms)
