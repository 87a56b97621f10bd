"""The ingest writer: a bounded queue drained by one task doing group commits.

Many concurrent requests share one transaction; each is acknowledged only after that
transaction commits. A group commit first waits, ``commit_delay_ms`` at most, until as many
ingest requests have arrived since the previous commit as it answered, so that clients
posting again once answered are committed together (docs/decisions/commit-delay.md).
Dedup, derived durations, events, counters and window buckets are written together, then
the same tally is applied to the live state. On shared storage the transaction also reads
the other replicas' journalled changes since the last one applied and journals its own
(``exporter.live.journal``), applied here in commit order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from exporter.clock import Clock
from exporter.errors import CommitFailed, Unavailable
from exporter.health import StorageHealth
from exporter.ingest.commit import CommitResult, commit
from exporter.live.state import LiveState
from exporter.live.windows import window_bounds
from exporter.model import Event
from exporter.selfmetrics import SelfMetrics
from exporter.settings import Settings
from exporter.storage.base import Runner
from exporter.timestamps import datetime_to_ms

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Job:
    events: Sequence[Event]
    future: asyncio.Future[CommitResult] = field(repr=False)


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
        max_duration_ms: int,
        shared: asyncio.Lock | None = None,
        commit_delay_s: float = 0.0,
    ) -> None:
        self._db = db
        self._live = live
        self._metrics = metrics
        self._clock = clock
        self._health = health
        self._max_queue = max_queue_events
        self._max_commit = max_commit_events
        self._retry_after = retry_after_s
        self._max_duration_ms = max_duration_ms
        self._pending: deque[_Job] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._pruned_before = 0
        self._shared = shared
        """Held from a commit's start until its outcome is applied, on storage replicas
        share (``exporter.ingest.follow`` takes it too); None: nothing is shared."""
        self.queued_events = 0
        self._delay_s = commit_delay_s
        self.arrived = 0
        """Ingest requests read and parsed (or refused) so far (``arriving``)."""
        self._answered = 0
        """Requests the previous group commit answered, and ``arrived`` when it ended."""
        self._arrived_before = 0
        self._last_commit_s = 0.0
        """How long the previous group commit took: no wait is longer (``_gather``)."""

    @classmethod
    def for_settings(
        cls,
        db: Runner,
        live: LiveState,
        metrics: SelfMetrics,
        clock: Clock,
        health: StorageHealth,
        settings: Settings,
        shared: asyncio.Lock | None = None,
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
            max_duration_ms=settings.max_duration_ms,
            shared=shared,
            commit_delay_s=settings.commit_delay_ms / 1000,
        )

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Held by an ingest request while its body is read and parsed; on leaving, the
        request counts as arrived (its events, if any, must be submitted before anything
        else is awaited)."""
        try:
            yield
        finally:
            self.arrived += 1
            self._wakeup.set()  # a gathering commit re-checks; an idle writer just loops

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
            await self._gather()
            began = asyncio.get_running_loop().time()
            await self._commit_jobs(self._take())
            self._last_commit_s = asyncio.get_running_loop().time() - began

    def stop(self) -> None:
        """Refuse new work; ``run()`` returns once everything queued is committed."""
        self._closing = True
        self._wakeup.set()

    async def _gather(self) -> None:
        """Wait until as many requests have arrived since the previous commit ended as it
        answered (the clients it answered, posting again), unless a full group is already
        queued; ``commit_delay`` at most, and no longer than the previous commit took, so
        a wait at most doubles a commit's latency when clients do not post again at once
        (when arrivals do not depend on answers, say)."""
        if self._delay_s <= 0:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + min(self._delay_s, self._last_commit_s)
        waited = False
        while (
            not self._closing
            and self.queued_events < self._max_commit
            and self.arrived - self._arrived_before < self._answered
        ):
            left = deadline - loop.time()
            if left <= 0:
                break
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), left)
            waited = True
        if waited:
            self._metrics.commit_wait.inc(loop.time() - started)

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
        if self._shared is None:
            await self._commit_and_apply(jobs, size)
            return
        async with self._shared:
            await self._commit_and_apply(jobs, size)

    async def _commit_and_apply(self, jobs: list[_Job], size: int) -> None:
        now_ms = datetime_to_ms(self._clock.now())
        window_start = window_bounds(now_ms).start_ms
        prune_before = window_start if window_start > self._pruned_before else None
        started = self._clock.monotonic()
        try:
            outcome = await self._db.run(
                self._health.checked(commit),
                [job.events for job in jobs],
                now_ms,
                window_start,
                self._live.orgs,
                prune_before,
                self._max_duration_ms,
                None if self._shared is None else self._live.applied_id,
                self._live.recount_inflight,
            )
        except Exception as exc:  # the writer must outlive any one commit, or requests hang
            kind = self._health.record(exc)  # storage failures: 503 until a probe commits
            if kind is None and len(jobs) > 1:  # isolate the request that carries the fault
                log.warning("commit of %d requests failed (%s); retrying them one by one",
                            len(jobs), exc)  # fmt: skip
                for job in jobs:
                    await self._commit_and_apply([job], len(job.events))
                return
            log.error("commit of %d events failed: %s", size, exc, exc_info=kind is None)
            self._finish(jobs, size, error=self._health.refusal() if kind else self._failed(exc))
            return
        if prune_before is not None:
            self._pruned_before = prune_before
        self._live.recount_inflight = False  # the follower shares the lock: none set since
        for entry_id, entry in outcome.pending:
            self._live.apply_entry(entry_id, entry, now_ms)
        if self._live.take(outcome.entry_id):
            self._live.apply(outcome.tally, now_ms)
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
        self._answered, self._arrived_before = len(jobs), self.arrived
        for index, job in enumerate(jobs):
            if job.future.done():  # the request went away; its events are committed anyway
                continue
            if results is not None:
                job.future.set_result(results[index])
            else:
                job.future.set_exception(error or RuntimeError("commit failed"))
