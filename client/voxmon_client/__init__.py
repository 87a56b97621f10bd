"""voxmon's client: fire-and-forget event emitters for pipeline code. ``Emitter`` needs only
the standard library; ``AsyncEmitter`` needs the ``aiohttp`` extra and is imported on first
use, so ``import voxmon_client`` works without aiohttp installed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voxmon_client.backoff import Backoff
from voxmon_client.clock import Clock, SystemClock
from voxmon_client.emitter import Emitter
from voxmon_client.outbox import ClientStats, EventError
from voxmon_client.stage import Stage
from voxmon_client.wire import INGEST_PATH

if TYPE_CHECKING:
    from voxmon_client.aio import AsyncEmitter

__all__ = [
    "INGEST_PATH",
    "AsyncEmitter",
    "Backoff",
    "ClientStats",
    "Clock",
    "Emitter",
    "EventError",
    "Stage",
    "SystemClock",
]


def __getattr__(name: str) -> Any:
    """``AsyncEmitter`` on first use: importing it imports aiohttp."""
    if name == "AsyncEmitter":
        from voxmon_client.aio import AsyncEmitter

        return AsyncEmitter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
