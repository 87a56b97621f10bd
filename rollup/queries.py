"""The report service behind the history, stages and organisation-breakdown endpoints:
snapshot reads on the query pool, turned into reports by ``rollup.reports``. Windows are
``[start, end)`` in epoch ms; no ``org_id`` means platform rows only."""

from __future__ import annotations

from typing import Any

from exporter.reports import HistoryRow, OrgReport, StageReport
from exporter.storage.base import Reader, Store
from rollup import reports


class ReportService:
    """Implements ``exporter.http.context.Reports`` on a backend's read pool."""

    def __init__(self, reads: Reader) -> None:
        self._reads = reads

    async def history(
        self, period: str, start_ms: int, end_ms: int, org_id: str | None
    ) -> list[HistoryRow]:
        rows = await self._reads.run(_scope_rows, period, start_ms, end_ms, org_id)
        return reports.history(rows)

    async def stages(
        self, period: str, start_ms: int, end_ms: int, org_id: str | None
    ) -> list[StageReport]:
        rows = await self._reads.run(_scope_rows, period, start_ms, end_ms, org_id)
        return reports.stages(rows)

    async def orgs(self, period: str, start_ms: int, end_ms: int, limit: int) -> list[OrgReport]:
        """Busiest organisations first; three queries whatever their number."""
        return await self._reads.run(_org_breakdown, period, start_ms, end_ms, limit)


def _scope_rows(
    store: Store, period: str, start_ms: int, end_ms: int, org_id: str | None
) -> list[Any]:
    return store.snapshots.snapshot_rows(period, start_ms, end_ms, org_id or "")


def _org_breakdown(
    store: Store, period: str, start_ms: int, end_ms: int, limit: int
) -> list[OrgReport]:
    totals = store.snapshots.org_totals(period, start_ms, end_ms, limit)
    ids = [t.org_id for t in totals]
    digests = store.snapshots.end_to_end_digests(period, start_ms, end_ms, ids)
    return reports.orgs(totals, digests, store.orgs.org_names(ids))
