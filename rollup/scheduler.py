"""The job loop: ``tick(now)`` runs every job that is due and returns the next fire time;
``run()`` is a thin loop around it. A failing job is logged and counted, never fatal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.clock import Clock
from exporter.records import JobRun
from exporter.storage.base import Leadership
from exporter.timestamps import datetime_to_ms
from rollup.jobs import JobOutcome
from rollup.schedule import CronSchedule

log = logging.getLogger(__name__)

MAX_SLEEP = timedelta(seconds=60)
"""Longest single sleep, so a wall-clock jump is noticed within a minute."""
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(minutes=15)
"""A failed job runs again after 1, 2, 4 ... minutes (at most 15), or at its next cron fire
if that comes first, so a full disk or a locked file does not leave the data stale for an
hour or a week."""

LEADER_POLL = timedelta(seconds=5)
"""How often a replica that does not lead tries to take the job lock."""

Record = Callable[[JobRun], Awaitable[JobRun]]
"""Stores a run and returns the stored record (with the job's run counts)."""
LoadRuns = Callable[[], Awaitable[Mapping[str, JobRun]]]
"""Reads every job's last recorded run (whoever ran it)."""


@dataclass(frozen=True, slots=True)
class Job:
    """A named job, its cron schedule, and the coroutine that runs it for ``now``."""

    name: str
    schedule: CronSchedule
    run: Callable[[datetime], Awaitable[JobOutcome]]
    at_start: bool = False
    """Run once at start whatever the schedule (the rollups' catch-up of missing and dirty
    windows, so a restart after a crash repairs them at once)."""


class Scheduler:
    """Runs jobs at their cron fire times, while this replica leads (``leadership``: always
    on SQLite; on PostgreSQL the replica holding the job lock). At start, and whenever it
    becomes the leader, a job whose last recorded run is older than its latest fire time
    (no replica ran it), or that asks to run at start, is due immediately."""

    def __init__(
        self,
        jobs: Sequence[Job],
        clock: Clock,
        record: Record,
        last_runs: Mapping[str, JobRun],
        *,
        instance: str = "",
        leadership: Leadership | None = None,
        load_runs: LoadRuns | None = None,
    ) -> None:
        self.jobs = list(jobs)
        self._clock = clock
        self._record = record
        self.instance = instance
        self._leadership = leadership
        self._load_runs = load_runs
        self._leading = leadership is None
        self.last_runs: dict[str, JobRun] = dict(last_runs)
        self._failures: dict[str, int] = {}
        now = clock.now()
        self.next_fire: dict[str, datetime] = {job.name: self._first_fire(job, now) for job in jobs}
        self.ticked = asyncio.Event()
        """Set after every tick (tests await it instead of sleeping)."""

    def _first_fire(self, job: Job, now: datetime) -> datetime:
        last = self.last_runs.get(job.name)
        missed = last is None or datetime_to_ms(job.schedule.previous_fire(now)) > last.last_run_ms
        return now if missed or job.at_start else job.schedule.next_fire(now)

    async def tick(self, now: datetime) -> datetime:
        """Run, in declaration order, every job whose fire time is at or before ``now``;
        returns the earliest next fire time. A failed job is retried sooner (``RETRY_*``).
        A replica that does not lead runs nothing and looks again after ``LEADER_POLL``."""
        if not await self._lead(now):
            self.ticked.set()
            return now + LEADER_POLL
        for job in self.jobs:
            if self.next_fire[job.name] <= now:
                run = await self.run_job(job, now)
                self.next_fire[job.name] = self._after(job, run, now)
        self.ticked.set()
        return min(self.next_fire.values())

    async def _lead(self, now: datetime) -> bool:
        """Whether this replica leads now; on becoming the leader, reload who ran what and
        make every job whose fire no replica ran (or that runs at start) due now."""
        if self._leadership is None:
            return True
        leading = await self._leadership.hold()
        if leading and not self._leading:
            log.info("leader: instance %s holds the job lock", self.instance)
            if self._load_runs is not None:
                self.last_runs = dict(await self._load_runs())
            self.next_fire = {job.name: self._first_fire(job, now) for job in self.jobs}
        elif self._leading and not leading:
            log.warning("leader: instance %s lost the job lock", self.instance)
        self._leading = leading
        return leading

    def _after(self, job: Job, run: JobRun, now: datetime) -> datetime:
        following = job.schedule.next_fire(now)
        if run.last_result == "success":
            self._failures.pop(job.name, None)
            return following
        failures = self._failures.get(job.name, 0) + 1
        self._failures[job.name] = failures
        retry: timedelta = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX)
        return min(following, now + retry)

    async def run_job(self, job: Job, now: datetime, trigger: str = "schedule") -> JobRun:
        """Run one job now, whatever its schedule; log the outcome and record it in storage
        (run counts and last success live there, so runs by the CLI count too)."""
        started = self._clock.monotonic()
        outcome, error = JobOutcome(), None
        try:
            outcome = await job.run(now)
        except Exception as exc:  # a job failure must never stop the loop
            log.exception("job %s failed", job.name)
            error = f"{type(exc).__name__}: {exc}"
        elapsed = self._clock.monotonic() - started
        run = job_run(job.name, now, outcome, error, elapsed, trigger, self.instance)
        try:
            run = await self._record(run)
        except Exception:
            log.exception("could not record the run of job %s", job.name)
        self.last_runs[job.name] = run
        return run

    async def run(self) -> None:
        """Tick forever; sleeps until the next fire time (at most ``MAX_SLEEP`` at once)."""
        while True:
            next_fire = await self.tick(self._clock.now())
            delay = min(next_fire - self._clock.now(), MAX_SLEEP).total_seconds()
            await asyncio.sleep(max(delay, 0.0))


def job_run(
    name: str,
    now: datetime,
    outcome: JobOutcome,
    error: str | None,
    elapsed_s: float,
    trigger: str,
    instance: str = "",
) -> JobRun:
    """The record of one run, logged as one line (the scheduler and the CLI share it)."""
    now_ms = datetime_to_ms(now)
    result = "failure" if error else "success"
    run = JobRun(
        job=name,
        last_run_ms=now_ms,
        last_result=result,
        last_error=error,
        last_success_ms=None if error else now_ms,
        duration_s=elapsed_s,
        rows_written=outcome.rows,
        windows=outcome.describe(),
        trigger=trigger,
        instance=instance,
    )
    log.info(
        "job=%s trigger=%s instance=%s result=%s windows=%s rows=%d deleted=%s skipped=%d"
        " duration=%.3fs",
        name, trigger, instance or "-", result, run.windows, outcome.rows, outcome.deleted or "-",
        sum(skip.count for skip in outcome.skipped), elapsed_s,
    )  # fmt: skip
    for skip in outcome.skipped:
        log.info("job=%s %s", name, skip.describe())
    return run
