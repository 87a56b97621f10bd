"""The job loop: ``tick(now)`` runs every job that is due and returns the next fire time;
``run()`` is a thin loop around it. A failing job is logged and counted, never fatal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.clock import Clock
from exporter.selfmetrics import SelfMetrics
from exporter.storage.jobs import JobRun
from exporter.timestamps import datetime_to_ms
from rollup.jobs import JobOutcome
from rollup.schedule import CronSchedule

log = logging.getLogger(__name__)

MAX_SLEEP = timedelta(seconds=60)
"""Longest single sleep, so a wall-clock jump is noticed within a minute."""


@dataclass(frozen=True, slots=True)
class Job:
    """A named job, its cron schedule, and the coroutine that runs it for ``now``."""

    name: str
    schedule: CronSchedule
    run: Callable[[datetime], Awaitable[JobOutcome]]


class Scheduler:
    """Runs jobs at their cron fire times. At start, a job whose last recorded run is
    older than its latest fire time (the daemon was down) is due immediately."""

    def __init__(
        self,
        jobs: Sequence[Job],
        clock: Clock,
        metrics: SelfMetrics,
        record: Callable[[JobRun], Awaitable[None]],
        last_runs: Mapping[str, JobRun],
    ) -> None:
        self.jobs = list(jobs)
        self._clock = clock
        self._metrics = metrics
        self._record = record
        self.last_runs: dict[str, JobRun] = dict(last_runs)
        now = clock.now()
        self.next_fire: dict[str, datetime] = {job.name: self._first_fire(job, now) for job in jobs}
        self.ticked = asyncio.Event()
        """Set after every tick (tests await it instead of sleeping)."""
        for job in self.jobs:  # both results exist from the start, so increase() sees a 1st failure
            for result in ("success", "failure"):
                self._metrics.rollup_runs.labels(job.name, result)
        for run in self.last_runs.values():
            if run.last_success_ms is not None:
                self._metrics.rollup_last_success.labels(run.job).set(run.last_success_ms / 1000)

    def _first_fire(self, job: Job, now: datetime) -> datetime:
        last = self.last_runs.get(job.name)
        missed = last is None or datetime_to_ms(job.schedule.previous_fire(now)) > last.last_run_ms
        return now if missed else job.schedule.next_fire(now)

    async def tick(self, now: datetime) -> datetime:
        """Run, in declaration order, every job whose fire time is at or before ``now``;
        returns the earliest next fire time."""
        for job in self.jobs:
            if self.next_fire[job.name] <= now:
                await self.run_job(job, now)
                self.next_fire[job.name] = job.schedule.next_fire(now)
        self.ticked.set()
        return min(self.next_fire.values())

    async def run_job(self, job: Job, now: datetime) -> JobRun:
        """Run one job now, whatever its schedule; log, count and record the outcome."""
        started = self._clock.monotonic()
        outcome, error = JobOutcome(), None
        try:
            outcome = await job.run(now)
        except Exception as exc:  # a job failure must never stop the loop
            log.exception("job %s failed", job.name)
            error = f"{type(exc).__name__}: {exc}"
        elapsed = self._clock.monotonic() - started
        run = self._finish(job.name, now, outcome, error, elapsed)
        try:
            await self._record(run)
        except Exception:
            log.exception("could not record the run of job %s", job.name)
        return run

    def _finish(
        self, name: str, now: datetime, outcome: JobOutcome, error: str | None, elapsed: float
    ) -> JobRun:
        result = "failure" if error else "success"
        now_ms = datetime_to_ms(now)
        previous = self.last_runs.get(name)
        run = JobRun(
            job=name,
            last_run_ms=now_ms,
            last_result=result,
            last_error=error,
            last_success_ms=now_ms if not error else previous.last_success_ms if previous else None,
            duration_s=elapsed,
            rows_written=outcome.rows,
            windows=outcome.describe(),
        )
        self.last_runs[name] = run
        self._metrics.rollup_runs.labels(name, result).inc()
        self._metrics.rollup_seconds.labels(name).observe(elapsed)
        if not error:
            self._metrics.rollup_last_success.labels(name).set(now_ms / 1000)
        log.info(
            "job=%s result=%s windows=%s rows=%d deleted=%s duration=%.3fs",
            name, result, run.windows, outcome.rows, outcome.deleted or "-", elapsed,
        )  # fmt: skip
        return run

    async def run(self) -> None:
        """Tick forever; sleeps until the next fire time (at most ``MAX_SLEEP`` at once)."""
        while True:
            next_fire = await self.tick(self._clock.now())
            delay = min(next_fire - self._clock.now(), MAX_SLEEP).total_seconds()
            await asyncio.sleep(max(delay, 0.0))
