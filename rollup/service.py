"""The rollup service: the job table bound to the code each job runs, the scheduler that
fires them, manual runs and backfills through the rollup guard, the job status and metrics
read from storage, and the latency baseline. Jobs read on their own connection and queue
their writes on the one write path, behind ingest commits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from exporter.clock import Clock
from exporter.errors import Conflict, NotFound
from exporter.jobs import JOB_DEFS, JOB_NAMES, ROLLUP_HOURLY, JobDef
from exporter.live.state import LiveState
from exporter.records import InflightFigures, JobRun, Range, Skip
from exporter.selfmetrics import SelfMetrics
from exporter.settings import Settings
from exporter.storage.base import Backend, Store
from exporter.timestamps import datetime_to_ms, ms_to_datetime
from rollup import cleanup, jobs
from rollup.codec import decode_parts
from rollup.metrics import JobRunsCollector
from rollup.parts import latency_baseline
from rollup.schedule import CronSchedule
from rollup.scheduler import Job, Scheduler, job_run
from rollup.windows import Retention, windows_between

log = logging.getLogger(__name__)

JobFn = Callable[[Store, jobs.Write[object], datetime, Retention], jobs.JobOutcome]
RUNS: dict[str, JobFn] = {
    "rollup-hourly": jobs.run_hourly,
    "rollup-daily": jobs.run_daily,
    "cleanup-snapshots": cleanup.cleanup_snapshots,
    "cleanup-events": cleanup.cleanup_events,
}
"""The code each job of ``exporter.jobs.JOB_DEFS`` runs (a test checks they match)."""
BASELINE_SPAN = timedelta(days=7)
CLI_INSTANCE = f"cli@{socket.gethostname()}"
"""What a run by ``voxmon rollup`` / ``voxmon cleanup`` records as the instance that ran it."""


def retention_of(settings: Settings) -> Retention:
    return Retention(
        events=timedelta(hours=settings.event_retention_hours),
        hourly=timedelta(days=settings.hourly_retention_days),
        daily=timedelta(days=settings.daily_retention_days),
    )


class RollupService:
    """Owns the scheduler and everything that runs or reports jobs in the daemon."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        backend: Backend,
        live: LiveState,
        metrics: SelfMetrics,
        job_runs: JobRunsCollector,
    ) -> None:
        self._settings, self._clock, self._backend = settings, clock, backend
        self._live, self._metrics, self._job_runs = live, metrics, job_runs
        self._retention = retention_of(settings)
        self._scheduler: Scheduler | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, run_scheduler: bool) -> None:
        """Load the recorded runs and the baseline; with ``run_scheduler``, start firing
        jobs (a missed fire, and every rollup's catch-up, run at once)."""
        await self.refresh_baseline()
        last_runs = await self._backend.rollup_reads.run(lambda s: s.job_runs.load_runs())
        self._job_runs.update(last_runs)
        specs = [self._job(job) for job in JOB_DEFS]
        self._scheduler = Scheduler(
            specs,
            self._clock,
            self._record,
            last_runs,
            instance=self._settings.instance,
            leadership=self._backend.leadership,
            load_runs=lambda: self._backend.reads.run(lambda s: s.job_runs.load_runs()),
        )
        if run_scheduler:
            self._task = asyncio.create_task(self._scheduler.run(), name="voxmon-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def scheduler(self) -> Scheduler:
        assert self._scheduler is not None, "start() first"
        return self._scheduler

    def _job(self, job: JobDef) -> Job:
        run_job, write = RUNS[job.name], self._write

        async def run(now: datetime) -> jobs.JobOutcome:
            outcome = await self._backend.rollup_reads.run(run_job, write, now, self._retention)
            counts = await self._backend.rollup_reads.run(lambda s: s.snapshots.count_snapshots())
            for period, n in counts.items():
                self._metrics.snapshot_rows.labels(period).set(n)
            if job.name == ROLLUP_HOURLY:
                await self.refresh_baseline()
            return outcome

        return Job(job.name, CronSchedule(self._settings.crons[job.name]), run, job.at_start)

    def _write(self, fn: Callable[[Store], object]) -> object:
        """A job's write: on the writer's connection, queued behind ingest commits."""

        def in_transaction(store: Store) -> object:
            with store.transaction():
                return fn(store)

        return self._backend.writes.call(in_transaction)

    async def _record(self, run: JobRun) -> JobRun:
        stored = await self._backend.writes.run(_record_in_transaction, run)
        self._job_runs.update({stored.job: stored})
        return stored

    async def status(self) -> list[tuple[str, str, datetime, JobRun | None]]:
        """Each job: name, schedule, next fire and its last run from storage (whoever ran
        it), in the order a tick runs them."""
        stored = await self._backend.reads.run(lambda s: s.job_runs.load_runs())
        scheduler = self.scheduler
        return [
            (job.name, job.schedule.expr, scheduler.next_fire[job.name], stored.get(job.name))
            for job in scheduler.jobs
        ]

    async def run_now(self, name: str, window: Range | None) -> tuple[JobRun, list[Skip]]:
        """Run a job now, logged and recorded like a scheduled run; a window turns a
        rollup job into a backfill through the rollup guard. Refused windows are returned;
        when every window is refused nothing runs (``Conflict``, 409)."""
        job = next((j for j in self.scheduler.jobs if j.name == name), None)
        if job is None:
            raise NotFound(f"no job {name!r}; jobs: {', '.join(JOB_NAMES)}")
        now = self._clock.now()
        if window is None:
            return await self.scheduler.run_job(job, now, trigger="api"), []
        allowed, skipped = await self._plan(window, now)
        reads, write = self._backend.rollup_reads, self._write

        async def backfill(at: datetime) -> jobs.JobOutcome:
            outcome = await reads.run(jobs.run_windows, write, allowed, window.period, at)
            skipped.extend(outcome.skipped)  # refused while running (a day missing hours)
            return outcome

        run = await self.scheduler.run_job(Job(name, job.schedule, backfill), now, "api")
        return run, skipped

    async def _plan(self, window: Range, now: datetime) -> tuple[list[datetime], list[Skip]]:
        start, end = ms_to_datetime(window.start_ms), ms_to_datetime(window.end_ms)
        asked = windows_between(start, end, window.period)
        allowed, skipped = await self._backend.rollup_reads.run(
            jobs.plan_windows, window.period, asked, now
        )
        if not allowed:
            raise Conflict(
                "nothing to run: every window was refused; "
                + "; ".join(s.describe() for s in skipped),
                [{"field": "start", "reason": s.reason, "message": s.describe()}
                 for s in skipped],
            )  # fmt: skip
        return allowed, skipped

    async def refresh_metrics(self) -> None:
        """What every replica shares, for the next scrape: job runs recorded by anyone (the
        CLI too), snapshot rows, the in-flight gauges and the database size (read-pool
        queries, never waiting behind a rollup); while storage cannot be read, the last
        values are served (``/metrics`` must keep working)."""
        stuck_before = datetime_to_ms(self._clock.now()) - self._settings.stuck_after_s * 1000
        try:
            runs, counts, inflight = await self._backend.reads.run(_shared_figures, stuck_before)
            size = await self._backend.measure_size()
        except Exception as exc:
            log.warning("shared figures not refreshed for /metrics: %s", exc)
            return
        self._live.inflight = inflight
        self._job_runs.update(runs)
        for period, n in counts.items():
            self._metrics.snapshot_rows.labels(period).set(n)
        self._metrics.database_bytes.set(size)

    async def refresh_baseline(self) -> None:
        """Latency baseline gauges from the last 7 days of hourly platform snapshots."""
        end = datetime_to_ms(self._clock.now())
        start = end - int(BASELINE_SPAN.total_seconds() * 1000)
        rows = await self._backend.rollup_reads.run(
            lambda s: s.snapshots.snapshot_rows("hourly", start, end, "")
        )
        self._live.latency_baseline_s = latency_baseline(decode_parts(r.parts) for r in rows)


def _shared_figures(
    store: Store, stuck_before_ms: int
) -> tuple[dict[str, JobRun], dict[str, int], InflightFigures]:
    with store.read_transaction():
        return (
            store.job_runs.load_runs(),
            store.snapshots.count_snapshots(),
            store.artifacts.inflight_figures(stuck_before_ms),
        )


def _record_in_transaction(store: Store, run: JobRun) -> JobRun:
    with store.transaction():
        return store.job_runs.record_run(run)


def run_recorded(
    store: Store, name: str, now: datetime, clock: Clock, run: Callable[[], jobs.JobOutcome]
) -> jobs.JobOutcome:
    """Run a job outside the daemon (the CLI) the way the scheduler does, and record the
    run in the same records, so ``GET /v1/rollups`` and the ``voxmon_rollup_*`` metrics of
    a running daemon see it. A failure is recorded, then raised."""
    started = clock.monotonic()
    try:
        outcome = run()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        elapsed = clock.monotonic() - started
        failed = job_run(name, now, jobs.JobOutcome(), error, elapsed, "cli", CLI_INSTANCE)
        _record_in_transaction(store, failed)
        raise
    done = job_run(name, now, outcome, None, clock.monotonic() - started, "cli", CLI_INSTANCE)
    _record_in_transaction(store, done)
    return outcome
