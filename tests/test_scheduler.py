"""The job loop: due jobs, failure isolation, missed fires caught up at start."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.http.context import ROLLUPS
from exporter.records import JobRun
from exporter.timestamps import datetime_to_ms
from rollup.jobs import JobOutcome
from rollup.schedule import CronSchedule
from rollup.scheduler import Job, Scheduler
from tests.conftest import make_event
from tests.tools import FakeClock


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, datetime]] = []
        self.records: list[JobRun] = []

    def job(self, name: str, cron: str, fail: bool = False) -> Job:
        async def run(now: datetime) -> JobOutcome:
            self.calls.append((name, now))
            if fail:
                raise RuntimeError("disk on fire")
            return JobOutcome(windows=(now,), rows=3)

        return Job(name, CronSchedule(cron), run)

    async def record(self, run: JobRun) -> JobRun:
        self.records.append(run)
        return run


def make(
    clock: FakeClock, rec: Recorder, jobs: list[Job], last: dict[str, JobRun] | None = None
) -> Scheduler:
    return Scheduler(jobs, clock, rec.record, last or {})


def ran(name: str, when: datetime) -> JobRun:
    ms = datetime_to_ms(when)
    return JobRun(name, ms, "success", None, ms, 0.1, 1, "-")


async def test_scheduler_tick_runs_due_jobs_and_returns_next_fire() -> None:
    clock = FakeClock(utc(2026, 11, 28, 10, 10))
    rec = Recorder()
    last = {"a": ran("a", utc(2026, 11, 28, 9, 30)), "b": ran("b", utc(2026, 11, 28, 1, 30))}
    scheduler = make(clock, rec, [rec.job("a", "30 * * * *"), rec.job("b", "30 1 * * *")], last)
    assert await scheduler.tick(clock.now()) == utc(2026, 11, 28, 10, 30)
    assert rec.calls == []
    assert await scheduler.tick(utc(2026, 11, 28, 10, 30)) == utc(2026, 11, 28, 11, 30)
    assert rec.calls == [("a", utc(2026, 11, 28, 10, 30))]


async def test_scheduler_failing_job_is_counted_and_next_job_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(utc(2026, 11, 28, 10, 30))
    rec = Recorder()
    scheduler = make(
        clock, rec, [rec.job("bad", "30 * * * *", fail=True), rec.job("good", "30 * * * *")]
    )
    with caplog.at_level(logging.INFO, logger="rollup.scheduler"):
        await scheduler.tick(clock.now())
    assert [name for name, _ in rec.calls] == ["bad", "good"]
    runs = {r.job: r for r in rec.records}
    assert (runs["bad"].last_result, runs["bad"].last_error) == (
        "failure", "RuntimeError: disk on fire",
    )  # fmt: skip
    assert runs["good"].last_result == "success"
    assert runs["good"].last_success_ms == datetime_to_ms(clock.now())
    assert runs["bad"].last_success_ms is None
    assert {r.trigger for r in rec.records} == {"schedule"}
    assert "job bad failed" in caplog.text and "disk on fire" in caplog.text
    assert "job=good trigger=schedule instance=- result=success" in caplog.text


async def test_scheduler_missed_fire_is_due_at_start() -> None:
    clock = FakeClock(utc(2026, 11, 29, 6, 0))  # Sunday, after the 05:00 cleanup fire
    rec = Recorder()
    jobs = [rec.job("weekly", "0 5 * * 0"), rec.job("hourly", "30 * * * *")]
    last = {
        "weekly": ran("weekly", utc(2026, 11, 22, 5, 0)),  # missed 2026-11-29 05:00
        "hourly": ran("hourly", utc(2026, 11, 29, 5, 30)),  # up to date
    }
    scheduler = make(clock, rec, jobs, last)
    await scheduler.tick(clock.now())
    assert rec.calls == [("weekly", utc(2026, 11, 29, 6, 0))]


async def test_scheduler_catch_up_jobs_run_at_every_start() -> None:
    """A rollup's catch-up runs at start even when its last fire was not missed, so the
    windows a crash left dirty are repaired at once, not at the next :30."""
    clock = FakeClock(utc(2026, 11, 28, 10, 10))
    rec = Recorder()
    catch_up = Job("rollup", CronSchedule("30 * * * *"), rec.job("rollup", "30 * * * *").run,
                   at_start=True)  # fmt: skip
    last = {name: ran(name, utc(2026, 11, 28, 9, 30)) for name in ("rollup", "cleanup")}
    scheduler = make(clock, rec, [catch_up, rec.job("cleanup", "30 * * * *")], last)
    assert await scheduler.tick(clock.now()) == utc(2026, 11, 28, 10, 30)
    assert rec.calls == [("rollup", utc(2026, 11, 28, 10, 10))]


async def test_scheduler_failed_job_is_retried_sooner_with_backoff() -> None:
    """A failing weekly job is retried after 1, 2, 4 ... minutes (at most 15), not next
    week; once it succeeds it is back on its cron."""
    clock = FakeClock(utc(2026, 11, 29, 5, 0))  # Sunday, a fire time of the weekly job
    rec = Recorder()
    failing = {"left": 6}

    async def flaky(now: datetime) -> JobOutcome:
        rec.calls.append(("weekly", now))
        if failing["left"]:
            failing["left"] -= 1
            raise OSError("database or disk is full")
        return JobOutcome()

    scheduler = make(clock, rec, [Job("weekly", CronSchedule("0 5 * * 0"), flaky)])
    fires = []
    for _ in range(7):
        fires.append(await scheduler.tick(clock.now()))
        clock.set(fires[-1])
    gaps = [int((b - a).total_seconds() // 60) for a, b in zip(
        [utc(2026, 11, 29, 5, 0), *fires[:-1]], fires, strict=True)]  # fmt: skip
    assert gaps == [1, 2, 4, 8, 15, 15, 60 * 24 * 7 - 45]
    assert [r.last_result for r in rec.records] == ["failure"] * 6 + ["success"]


async def wait_tick(client: Any) -> None:
    scheduler = client.app[ROLLUPS].scheduler
    await asyncio.wait_for(scheduler.ticked.wait(), timeout=60)


def hourly_platform_hours(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT period_start_ms FROM snapshots WHERE period = 'hourly' AND scope = ''"
            " ORDER BY 1"
        )
        return [r[0] for r in rows]


async def test_scheduler_catches_up_after_downtime(
    start_app: Any, clock: FakeClock, tmp_path: Path
) -> None:
    """Daemon down from 10:10 to 15:50 UTC: at start, hours 10:00-14:00 are aggregated."""
    clock.set(utc(2026, 11, 28, 10, 10))
    client = await start_app()
    response = await client.post("/v1/events", json=[make_event(timestamp="2026-11-28T07:10:00Z")])
    assert response.status == 200
    await client.close()
    client = await start_app(run_scheduler=True)
    await wait_tick(client)
    before = hourly_platform_hours(tmp_path / "voxmon.db")
    assert before[-1] == datetime_to_ms(utc(2026, 11, 28, 9))
    await client.close()

    clock.set(utc(2026, 11, 28, 15, 50))
    client = await start_app(run_scheduler=True)
    await wait_tick(client)
    after = hourly_platform_hours(tmp_path / "voxmon.db")
    added = [h for h in after if h not in before]
    assert added == [datetime_to_ms(utc(2026, 11, 28, hour)) for hour in range(10, 15)]
    runs = client.app[ROLLUPS].scheduler.last_runs
    assert runs["rollup-hourly"].windows.endswith("(5)")
