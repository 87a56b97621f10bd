"""Composition root: builds the aiohttp application, its routes, middleware and the
start-up/shut-down sequence (database, state, writer) in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter import api, queries
from exporter.clock import Clock, SystemClock
from exporter.errors import Conflict, NotFound, VoxmonError
from exporter.health import StorageHealth
from exporter.http.auth import Authenticator
from exporter.http.params import Range
from exporter.ingest.writer import IngestWriter
from exporter.live.collector import LiveOrgsCollector, PipelineCollector
from exporter.live.state import LiveState
from exporter.live.windows import window_bounds
from exporter.selfmetrics import SelfMetrics
from exporter.settings import Settings
from exporter.storage.sqlite import artifacts as artifact_rows
from exporter.storage.sqlite import job_runs as job_rows
from exporter.storage.sqlite import live_state as state_rows
from exporter.storage.sqlite import snapshots as snapshot_rows
from exporter.storage.sqlite.database import Database, in_transaction
from exporter.timestamps import datetime_to_ms, ms_to_datetime
from rollup import jobs, reports
from rollup.codec import decode_parts
from rollup.metrics import JobRunsCollector
from rollup.parts import latency_baseline
from rollup.schedule import CronSchedule
from rollup.scheduler import Job, Scheduler
from rollup.windows import Retention, windows_between

log = logging.getLogger(__name__)

ROUTES: tuple[tuple[str, str, api.Handler, str | None], ...] = (
    ("POST", "/v1/events", api.post_events, "ingest"),
    ("GET", "/v1/metrics/realtime", api.get_realtime, "read"),
    ("GET", "/v1/metrics/history", queries.get_history, "read"),
    ("GET", "/v1/metrics/stages", queries.get_stages, "read"),
    ("GET", "/v1/metrics/orgs", queries.get_org_breakdown, "read"),
    ("GET", "/v1/orgs", queries.get_orgs, "read"),
    ("GET", "/v1/orgs/{org_id}", queries.get_org, "read"),
    ("PUT", "/v1/orgs/{org_id}", queries.put_org, "admin"),
    ("GET", "/v1/artifacts", queries.get_artifacts, "read"),
    ("GET", "/v1/artifacts/{artifact_id}/events", queries.get_timeline, "read"),
    ("GET", "/v1/rollups", queries.get_rollups, "read"),
    ("POST", "/v1/rollups/{job}/run", queries.post_rollup_run, "admin"),
    ("GET", "/metrics", api.get_metrics, "metrics"),
    ("GET", "/openapi.json", api.get_openapi, None),
    ("GET", "/healthz", api.get_healthz, None),
    ("GET", "/readyz", api.get_readyz, None),
)
"""``(method, path, handler, scope)``; scope None means open."""

INGEST_PATH = "/v1/events"


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    registry: CollectorRegistry | None = None,
    run_scheduler: bool = True,
) -> web.Application:
    """Build the application; nothing touches the disk until it starts. With
    ``run_scheduler=False`` the jobs exist (for status and manual runs) but never fire on
    their own; tests that drive jobs by hand use it."""
    clock = clock or SystemClock()
    registry = registry or CollectorRegistry()
    live = LiveState(settings.max_org_series, settings.max_live_orgs)
    metrics = SelfMetrics.register(registry)
    registry.register(PipelineCollector(live, clock, settings.stuck_after_s * 1000))
    registry.register(LiveOrgsCollector(live))
    job_runs = JobRunsCollector(list(JOBS))
    registry.register(job_runs)
    svc = api.Services(
        settings=settings,
        clock=clock,
        registry=registry,
        metrics=metrics,
        live=live,
        auth=Authenticator(settings.tokens, settings.auth_enabled),
        job_runs=job_runs,
        run_scheduler=run_scheduler,
    )
    app = web.Application(
        middlewares=[_error_middleware, _auth_middleware],
        client_max_size=settings.max_body_bytes + 1,
    )
    app[api.SERVICES] = svc
    for method, path, handler, _scope in ROUTES:
        app.router.add_route(method, path, handler)
    app.cleanup_ctx.append(_lifecycle)
    return app


_SCOPE_OF = {(method, path): scope for method, path, _, scope in ROUTES}


@web.middleware
async def _auth_middleware(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    scope = _SCOPE_OF.get((request.method, path))
    if scope is not None:
        api.services(request).auth.check(request.headers.get("Authorization"), scope)
    return await handler(request)


@web.middleware
async def _error_middleware(request: web.Request, handler: api.Handler) -> web.StreamResponse:
    """Renders ``VoxmonError``s and HTTP errors as the JSON error body, counts ingest
    requests by code, and reports the server-side time in a ``Server-Timing`` header."""
    clock = api.services(request).clock
    started = clock.monotonic()
    try:
        response = await handler(request)
    except VoxmonError as exc:
        response = _error_response(exc.status, exc.code, exc.message, exc.details)
        headers = dict(exc.headers)
        if headers.pop("Connection", "") == "close":
            response.force_close()
        response.headers.update(headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _http_error_response(exc)
    except Exception:  # never a plain-text 500: render it, count it, log the traceback
        log.exception("unhandled error in %s %s", request.method, request.path)
        api.services(request).metrics.internal_errors.inc()
        response = _error_response(500, "internal", "internal error; see the voxmon log", [])
    if request.path == INGEST_PATH:
        api.services(request).metrics.requests.labels(str(response.status)).inc()
    if not response.prepared:
        elapsed_ms = (clock.monotonic() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.3f}"
    return response


_HTTP_CODES = {413: "payload_too_large", 415: "unsupported_media_type"}
"""aiohttp's own errors under the codes voxmon uses for the same refusals."""


def _http_error_response(exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(exc.status, exc.reason.lower().replace(" ", "_"))
    response = _error_response(exc.status, code, exc.text or exc.reason, [])
    for name in ("Allow", "Retry-After", "WWW-Authenticate"):
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


def _error_response(status: int, code: str, message: str, details: list[object]) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return api.json_response(body, status=status)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    """Start: open the database, restore live state, start the writer. Stop: refuse new
    work, drain the queue, close the database (reverse order)."""
    svc = app[api.SERVICES]
    settings = svc.settings
    if not settings.auth_enabled:
        log.warning("authentication is off: no tokens configured (listening on %s)", settings.host)
    db = await Database.open(settings.db_path, synchronous=settings.sqlite_synchronous)
    await _restore(db, svc)
    health = svc.health = await StorageHealth.start(db, svc.clock, svc.metrics)
    writer = IngestWriter(
        db,
        svc.live,
        svc.metrics,
        svc.clock,
        health=health,
        max_queue_events=settings.queue_max_events,
        max_commit_events=settings.commit_max_events,
        retry_after_s=settings.retry_after_s,
        event_retention_ms=settings.event_retention_hours * 3_600_000,
        max_duration_ms=settings.max_duration_ms,
    )
    svc.writer = writer
    svc.metrics.queue_depth.set_function(lambda: writer.queued_events)
    svc.metrics.database_bytes.set_function(db.size_bytes)
    writer_task = asyncio.create_task(writer.run(), name="voxmon-writer")
    read_db = await Database.open(settings.db_path, synchronous=settings.sqlite_synchronous)
    scheduler = await _scheduler(svc, db, read_db)
    svc.scheduler = scheduler
    svc.read_side = queries.ReadSide(
        db=db,
        read_db=read_db,
        reports=reports,
        jobs=lambda: _job_status(scheduler, read_db),
        run_job=lambda name, window: _run_now(svc, scheduler, read_db, db, name, window),
    )
    svc.before_scrape = lambda: _refresh_job_runs(svc, read_db)
    scheduler_task = None
    if svc.run_scheduler:
        scheduler_task = asyncio.create_task(scheduler.run(), name="voxmon-scheduler")
    probe_task = asyncio.create_task(health.run(), name="voxmon-storage-probe")
    svc.ready = True
    log.info("voxmon ready: database %s", settings.db_path)
    try:
        yield
    finally:
        svc.ready = False
        probe_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe_task
        if scheduler_task is not None:
            scheduler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler_task
        writer.stop()
        await writer_task
        await read_db.close()
        await db.close()
        log.info("voxmon stopped")


def retention_of(settings: Settings) -> Retention:
    return Retention(
        events=timedelta(hours=settings.event_retention_hours),
        hourly=timedelta(days=settings.hourly_retention_days),
        daily=timedelta(days=settings.daily_retention_days),
    )


JOBS: dict[str, Callable[..., jobs.JobOutcome]] = {
    "rollup-hourly": jobs.run_hourly,
    "rollup-daily": jobs.run_daily,
    "cleanup-snapshots": jobs.cleanup_snapshots,
    "cleanup-events": jobs.cleanup_events,
}
"""Job name -> ``fn(read_conn, write, now, retention)``, in the order a tick runs them."""


def _write_via(db: Database) -> jobs.Write[object]:
    """A job's ``write``: run on the writer's connection, queued behind ingest commits."""

    def write(fn: Callable[[sqlite3.Connection], object]) -> object:
        return db.call(in_transaction, fn)

    return write


async def _scheduler(svc: api.Services, db: Database, read_db: Database) -> Scheduler:
    """Jobs read on their own connection and queue their writes behind ingest commits."""
    retention = retention_of(svc.settings)
    write = _write_via(db)

    def job(name: str) -> Job:
        async def run(now: datetime) -> jobs.JobOutcome:
            outcome = await read_db.run(JOBS[name], write, now, retention)
            counts = await read_db.run(snapshot_rows.count_snapshots)
            for period, n in counts.items():
                svc.metrics.snapshot_rows.labels(period).set(n)
            if name == "rollup-hourly":
                await _refresh_baseline(svc, read_db)
            return outcome

        catch_up = name.startswith("rollup-")
        return Job(name, CronSchedule(svc.settings.crons[name]), run, at_start=catch_up)

    async def record(run: job_rows.JobRun) -> job_rows.JobRun:
        stored: job_rows.JobRun = await db.run(
            in_transaction, lambda c: job_rows.record_run(c, run)
        )
        svc.job_runs.update({stored.job: stored})
        return stored

    await _refresh_baseline(svc, read_db)
    last_runs = await read_db.run(job_rows.load_runs)
    svc.job_runs.update(last_runs)
    return Scheduler([job(name) for name in JOBS], svc.clock, record, last_runs)


async def _job_status(scheduler: Scheduler, read_db: Database) -> list[dict[str, object]]:
    """Each job: schedule, next fire and its last run from storage (None before the
    first), whoever ran it."""
    stored = await read_db.run(job_rows.load_runs)
    status: list[dict[str, object]] = []
    for job in scheduler.jobs:
        run = stored.get(job.name)
        status.append({
            "job": job.name,
            "schedule": job.schedule.expr,
            "next_fire": scheduler.next_fire[job.name].isoformat().replace("+00:00", "Z"),
            "last_run": queries.job_run_json(run) if run else None,
        })  # fmt: skip
    return status


async def _run_now(
    svc: api.Services,
    scheduler: Scheduler,
    read_db: Database,
    db: Database,
    name: str,
    window: Range | None,
) -> tuple[job_rows.JobRun, list[dict[str, object]]]:
    """Run a job now through the scheduler (so it is logged and recorded); a window turns
    a rollup job into a backfill of every hour or day starting in ``[floor(start), end)``,
    the same windows as ``voxmon rollup --from/--to``, through the same guard. Refused
    windows are returned; when the guard refuses every window nothing runs (409)."""
    job = next((j for j in scheduler.jobs if j.name == name), None)
    if job is None:
        raise NotFound(f"no job {name!r}; jobs: {', '.join(JOBS)}")
    now = svc.clock.now()
    if window is None:
        return await scheduler.run_job(job, now, trigger="api"), []
    asked = windows_between(
        ms_to_datetime(window.start_ms), ms_to_datetime(window.end_ms), window.period
    )
    allowed, skipped = await read_db.run(jobs.plan_windows, window.period, asked, now)
    if not allowed:
        raise Conflict(
            "nothing to run: every window was refused; " + "; ".join(s.describe() for s in skipped),
            [{"field": "start", "reason": s.reason, "message": s.describe()} for s in skipped],
        )
    write = _write_via(db)

    async def backfill(at: datetime) -> jobs.JobOutcome:
        outcome = await read_db.run(jobs.run_windows, write, allowed, window.period, at)
        skipped.extend(outcome.skipped)  # refused while running (a day missing hours)
        return outcome

    run = await scheduler.run_job(Job(name, job.schedule, backfill), now, trigger="api")
    return run, [skip.to_json() for skip in skipped]


async def _refresh_job_runs(svc: api.Services, read_db: Database) -> None:
    svc.job_runs.update(await read_db.run(job_rows.load_runs))


BASELINE_SPAN = timedelta(days=7)


async def _refresh_baseline(svc: api.Services, read_db: Database) -> None:
    """Latency baseline gauges from the last 7 days of hourly platform snapshots."""
    end = datetime_to_ms(svc.clock.now())
    start = end - int(BASELINE_SPAN.total_seconds() * 1000)
    rows = await read_db.run(snapshot_rows.snapshot_rows, "hourly", start, end, "")
    svc.live.latency_baseline_s = latency_baseline(decode_parts(row.parts) for row in rows)


async def _restore(db: Database, svc: api.Services) -> None:
    now_ms = datetime_to_ms(svc.clock.now())
    since = window_bounds(now_ms).start_ms
    counters = await db.run(state_rows.load_counters, "live_counters")
    maxima = await db.run(state_rows.load_counters, "live_maxima")
    minutes = await db.run(state_rows.load_minutes, since)
    orgs, orgs_seen = await db.run(state_rows.load_orgs, svc.live.orgs.capacity)
    svc.live.load(counters, maxima, minutes, orgs, orgs_seen)
    svc.live.inflight.apply(await db.run(artifact_rows.load_in_flight))
