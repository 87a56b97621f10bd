"""Rollup job status (``GET /v1/rollups``) and manual runs and backfills
(``POST /v1/rollups/{job}/run``), through the rollup guard."""

from __future__ import annotations

import msgspec
from aiohttp import web

from exporter.errors import NotFound
from exporter.http.context import CLOCK, ROLLUPS, SETTINGS, json_response
from exporter.http.params import bad, parse_range, reject_unknown
from exporter.http.responses import JobRun as JobRunBody
from exporter.http.responses import JobStatus, RollupRun, Rollups, SkippedRange
from exporter.jobs import JOB_NAMES, ROLLUP_DAILY, ROLLUP_HOURLY
from exporter.records import JobRun, Range
from exporter.timestamps import datetime_to_ms, format_rfc3339

_PERIOD_OF = {ROLLUP_HOURLY: "hourly", ROLLUP_DAILY: "daily"}


async def get_rollups(request: web.Request) -> web.Response:
    reject_unknown(request.query, ())
    jobs = [
        JobStatus(
            job=name,
            schedule=schedule,
            next_fire=format_rfc3339(datetime_to_ms(next_fire)),
            last_run=job_run_body(run) if run else None,
        )
        for name, schedule, next_fire, run in await request.app[ROLLUPS].status()
    ]
    return json_response(Rollups(jobs))


async def post_rollup_run(request: web.Request) -> web.Response:
    """Run a job now (admin); rollup jobs take an optional window ``start``/``end`` to
    backfill every hour or day starting in it: refused windows are listed in ``skipped``;
    409 when every window is refused, 400 for a window that starts in the future."""
    reject_unknown(request.query, ("start", "end"))
    job = request.match_info["job"]
    if job not in JOB_NAMES:
        raise NotFound(f"no job {job!r}; jobs: {', '.join(JOB_NAMES)}")
    window = _window(request, job) if {"start", "end"} & set(request.query) else None
    run, skipped = await request.app[ROLLUPS].run_now(job, window)
    refused = [msgspec.convert(s.to_json(), SkippedRange) for s in skipped]
    return json_response(RollupRun(**msgspec.structs.asdict(job_run_body(run)), skipped=refused))


def _window(request: web.Request, job: str) -> Range:
    period = _PERIOD_OF.get(job)
    if period is None:
        raise bad("start", f"{job} takes no window")
    query = {**request.query, "period": period}
    window = parse_range(query, request.app[SETTINGS].max_range_rows)
    if window.start_ms > datetime_to_ms(request.app[CLOCK].now()):
        raise bad("start", f"is in the future ({format_rfc3339(window.start_ms)}); nothing"
                  " to roll up there yet")  # fmt: skip
    return window


def job_run_body(run: JobRun) -> JobRunBody:
    return JobRunBody(
        job=run.job,
        last_run=format_rfc3339(run.last_run_ms),
        result=run.last_result,
        error=run.last_error,
        last_success=format_rfc3339(run.last_success_ms) if run.last_success_ms else None,
        duration_s=run.duration_s,
        rows_written=run.rows_written,
        windows=run.windows,
        trigger=run.trigger,
        instance=run.instance,
    )
