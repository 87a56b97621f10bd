"""What handlers reach, one typed application key per service, and the two services the
HTTP layer uses without importing ``rollup`` (the composition root passes
``rollup.queries.ReportService`` and ``rollup.service.RollupService``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry

from exporter.clock import Clock
from exporter.health import StorageHealth
from exporter.http.auth import Authenticator
from exporter.ingest.writer import IngestWriter
from exporter.live.state import LiveState
from exporter.records import JobRun, Range, RangeSummary, Skip
from exporter.reports import HistoryRow, OrgReport, StageReport
from exporter.selfmetrics import SelfMetrics
from exporter.settings import Settings
from exporter.storage.base import Backend


class Reports(Protocol):
    """Snapshot reports over a range; implemented by ``rollup.queries.ReportService``."""

    async def history(
        self, period: str, start_ms: int, end_ms: int, org_id: str | None
    ) -> list[HistoryRow]: ...

    async def stages(
        self, period: str, start_ms: int, end_ms: int, org_id: str | None
    ) -> list[StageReport]: ...

    async def orgs(
        self, period: str, start_ms: int, end_ms: int, limit: int
    ) -> list[OrgReport]: ...

    async def summary(
        self, start_ms: int, end_ms: int, org_id: str | None, now_ms: int
    ) -> RangeSummary: ...


class Rollups(Protocol):
    """Job status and manual runs; implemented by ``rollup.service.RollupService``."""

    async def status(self) -> list[tuple[str, str, datetime, JobRun | None]]: ...

    async def run_now(self, name: str, window: Range | None) -> tuple[JobRun, list[Skip]]: ...

    async def refresh_metrics(self) -> None: ...


@dataclass(slots=True)
class Readiness:
    """Whether start-up has finished and shutdown has not begun (storage health is
    separate: ``StorageHealth``)."""

    started: bool = False


SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
REGISTRY = web.AppKey("registry", CollectorRegistry)
METRICS = web.AppKey("metrics", SelfMetrics)
LIVE = web.AppKey("live", LiveState)
AUTH = web.AppKey("auth", Authenticator)
READINESS = web.AppKey("readiness", Readiness)
# set at start-up, once storage is open:
BACKEND = web.AppKey("backend", Backend)
HEALTH = web.AppKey("health", StorageHealth)
WRITER = web.AppKey("writer", IngestWriter)
REPORTS = web.AppKey("reports", Reports)
ROLLUPS = web.AppKey("rollups", Rollups)

_encode = msgspec.json.encode


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(body), status=status, content_type="application/json")
