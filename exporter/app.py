"""Composition root: builds the services, registers the routes, and starts and stops
everything in order (``cleanup_ctx``); a failure at any start-up step unwinds what was
already started. The only ``exporter`` module that imports ``rollup``."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack

from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.clock import Clock, SystemClock
from exporter.health import StorageHealth
from exporter.http import context as ctx
from exporter.http import middleware
from exporter.http.auth import Authenticator
from exporter.http.routes import add_routes
from exporter.ingest.follow import Follower
from exporter.ingest.writer import IngestWriter
from exporter.jobs import JOB_NAMES
from exporter.live.collector import LiveOrgsCollector, PipelineCollector
from exporter.live.restore import restore
from exporter.live.state import LiveState
from exporter.selfmetrics import SelfMetrics
from exporter.settings import Settings
from exporter.storage.base import Backend
from exporter.storage.factory import open_backend
from exporter.timestamps import datetime_to_ms
from rollup.live_latency import LatencyWindows
from rollup.metrics import JobRunsCollector
from rollup.queries import ReportService
from rollup.service import RollupService

log = logging.getLogger(__name__)


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
    live = LiveState(settings.max_org_series, settings.max_live_orgs, LatencyWindows())
    registry.register(PipelineCollector(live, clock))
    registry.register(LiveOrgsCollector(live))
    app = web.Application(
        middlewares=[middleware.errors, middleware.auth],
        client_max_size=settings.max_body_bytes + 1,
    )
    app[ctx.SETTINGS], app[ctx.CLOCK], app[ctx.REGISTRY] = settings, clock, registry
    app[ctx.METRICS], app[ctx.LIVE] = SelfMetrics.register(registry), live
    app[ctx.AUTH] = Authenticator(settings.tokens, settings.auth_enabled)
    app[ctx.READINESS] = ctx.Readiness()
    add_routes(app, middleware.expect)
    app.cleanup_ctx.append(lambda app: _lifecycle(app, run_scheduler))
    return app


async def _lifecycle(app: web.Application, run_scheduler: bool) -> AsyncIterator[None]:
    """Start: open storage, restore the live state, start the storage probe, the writer
    and the jobs. Stop (in reverse): refuse new work, drain the ingest queue, stop the
    jobs and the probe, close storage."""
    settings, clock = app[ctx.SETTINGS], app[ctx.CLOCK]
    if not settings.auth_enabled:
        log.warning("authentication is off: no tokens configured (host %s)", settings.host)
    async with AsyncExitStack() as stack:
        backend = await open_backend(
            settings.location, synchronous=settings.sqlite_synchronous, instance=settings.instance
        )
        stack.push_async_callback(backend.close)
        app[ctx.BACKEND] = backend
        await restore(app[ctx.LIVE], backend.writes, datetime_to_ms(clock.now()))
        health = app[ctx.HEALTH] = await StorageHealth.start(
            backend.writes, backend.checks, clock, app[ctx.METRICS]
        )
        _background(stack, health.run(), "voxmon-storage-probe")
        _background(stack, health.check_integrity(settings.location.shown), "voxmon-integrity")
        stack.callback(health.integrity_checked.set)  # also when stopped before it ran
        stack.callback(backend.checks.stop_integrity)  # runs first: the check's thread returns
        shared = asyncio.Lock() if backend.shared else None
        writer = app[ctx.WRITER] = _writer(app, backend, health, shared)
        stack.push_async_callback(_drain, writer, asyncio.create_task(writer.run()))
        if shared is not None:
            follower = Follower(app[ctx.LIVE], backend.reads, clock, shared)
            _background(stack, follower.run(), "voxmon-journal-follower")
        app[ctx.ROLLUPS] = await _rollups(app, backend, stack, run_scheduler)
        app[ctx.REPORTS] = ReportService(backend.reads)
        _freeze_heap(stack)
        app[ctx.READINESS].started = True
        stack.callback(setattr, app[ctx.READINESS], "started", False)
        log.info("database %s open, state restored", settings.location.shown)
        yield
    log.info("voxmon stopped")


def _writer(
    app: web.Application, backend: Backend, health: StorageHealth, shared: asyncio.Lock | None
) -> IngestWriter:
    settings, metrics = app[ctx.SETTINGS], app[ctx.METRICS]
    writer = IngestWriter.for_settings(
        backend.writes, app[ctx.LIVE], metrics, app[ctx.CLOCK], health, settings, shared
    )
    metrics.queue_depth.set_function(lambda: writer.queued_events)
    metrics.leader.set_function(lambda: float(backend.leadership.leading))
    metrics.instance_info.labels(settings.instance).set(1)
    return writer


async def _rollups(
    app: web.Application, backend: Backend, stack: AsyncExitStack, run_scheduler: bool
) -> RollupService:
    job_runs = JobRunsCollector(JOB_NAMES)
    app[ctx.REGISTRY].register(job_runs)
    rollups = RollupService(
        app[ctx.SETTINGS], app[ctx.CLOCK], backend, app[ctx.LIVE], app[ctx.METRICS], job_runs
    )
    await rollups.start(run_scheduler)
    stack.push_async_callback(rollups.stop)
    return rollups


def _freeze_heap(stack: AsyncExitStack) -> None:
    """Everything alive once started (modules, restored state) moves to the collector's
    permanent generation, so a full collection while serving walks only what came after:
    it took 30-35 ms per pass with it and stalled whichever request triggered it. No
    collection first (it would cost a full pass per start); unfrozen at stop, so what the
    app leaves is collectable again (docs/decisions/gc-freeze.md)."""
    gc.freeze()
    stack.callback(gc.unfreeze)


async def _drain(writer: IngestWriter, task: asyncio.Task[None]) -> None:
    writer.stop()
    await task


def _background(stack: AsyncExitStack, work: Awaitable[None], name: str) -> None:
    task = asyncio.ensure_future(work)
    task.set_name(name)
    stack.push_async_callback(_cancel, task)


async def _cancel(task: asyncio.Future[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
