"""``voxmon serve``: refuse to start with one line when the database is held, unusable or
the port taken; otherwise bind first, then start the application, log "listening" once
the sockets serve, and on SIGINT/SIGTERM shut down gracefully (the ingest queue drains)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket

from aiohttp import web

from exporter import lock, logs, preflight
from exporter.app import create_app
from exporter.clock import Clock
from exporter.errors import StartupError
from exporter.http import server
from exporter.http.context import REGISTRY
from exporter.settings import Settings
from exporter.storage.errors import is_storage_error

log = logging.getLogger(__name__)


def serve(settings: Settings, clock: Clock) -> None:
    """Run until a signal. Raises ``StartupError`` for anything that stops it starting:
    the database lock is taken before the database is opened or the port bound. On
    PostgreSQL the server is checked instead of a file (no file lock: one replica)."""
    if settings.location.kind == "postgres":
        preflight.check_server(settings)
        asyncio.run(_serve(settings, clock, preflight.bind(settings.host, settings.port)))
        return
    preflight.check_location(settings.db_path)
    holder = lock.Holder(
        pid=os.getpid(),
        host=socket.gethostname(),
        listen=f"{settings.host}:{settings.port}",
        since=clock.now().isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    held = lock.DatabaseLock.acquire(settings.db_path, holder)
    try:
        preflight.check_database(settings.db_path, clock, full=False)  # full: after start
        sockets = preflight.bind(settings.host, settings.port)
        asyncio.run(_serve(settings, clock, sockets))
    finally:
        held.release()


async def _serve(settings: Settings, clock: Clock, sockets: list[socket.socket]) -> None:
    stop = _stop_on_signals()  # from here on, SIGINT/SIGTERM mean a graceful stop
    app = create_app(settings, clock=clock)
    limits = server.Limits.of(settings)
    access = logging.getLogger(logs.ACCESS_LOGGER) if settings.access_log else None
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=access,
        access_log_format=logs.ACCESS_FORMAT,
        **server.runner_options(limits),
    )
    try:
        await runner.setup()  # opens the database, restores state, starts writer and jobs
    except Exception as exc:
        for sock in sockets:
            sock.close()
        if not is_storage_error(exc):
            raise
        where = settings.location
        if where.kind == "postgres":
            raise StartupError(f"database {where.shown}: {exc}") from None
        raise StartupError(preflight.describe_failure(settings.db_path, exc)) from None
    server.install(runner, limits, clock, app[REGISTRY])
    try:
        for sock in sockets:
            await web.SockSite(runner, sock, backlog=server.BACKLOG).start()
        log.info("listening on %s", url(settings.host, settings.port))
        await stop.wait()
        log.info("shutting down: draining the ingest queue")
    finally:
        await runner.cleanup()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def url(host: str, port: int) -> str:
    """``http://host:port``, with brackets around an IPv6 address."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
