"""The report service behind the history, stages, summary and organisation-breakdown endpoints:
snapshot reads on the query pool, turned into reports by ``rollup.reports``. Windows are
``[start, end)`` in epoch ms; no ``org_id`` means platform rows only."""

from __future__ import annotations

from typing import Any

from exporter.records import RangeSummary, SnapshotRow
from exporter.reports import HistoryRow, OrgReport, StageReport
from exporter.storage.base import Reader, Store
from exporter.timestamps import HOUR_MS
from rollup import reports
from rollup.packed import PackedDigest
from rollup.summary import DAY_MS, Coverage, hour_bounds, plan, spans


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

    async def summary(
        self, start_ms: int, end_ms: int, org_id: str | None, now_ms: int
    ) -> RangeSummary:
        """One row merged over ``[start_ms, end_ms)`` widened to whole hours, and its gaps."""
        return await self._reads.run(_summary, start_ms, end_ms, org_id, now_ms)

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
    """Totals, digests and names from one snapshot of the database, so a rollup storing
    between them cannot pair one day's totals with another's digests."""
    with store.read_transaction():
        totals = store.snapshots.org_totals(period, start_ms, end_ms, limit)
        ids = [t.org_id for t in totals]
        merged: dict[str, PackedDigest] = {}  # merged while the next orgs' digests are read
        store.snapshots.end_to_end_digests(
            period, start_ms, end_ms, ids, lambda runs: merged.update(reports.merged_runs(runs))
        )
        names = store.orgs.org_names(ids)
    return reports.orgs(totals, merged, names)


def _summary(
    store: Store, start_ms: int, end_ms: int, org_id: str | None, now_ms: int
) -> RangeSummary:
    """Plan and read in one snapshot of the database, so the rows agree with the plan."""
    with store.read_transaction():
        found = plan(start_ms, end_ms, _coverage(store, start_ms, end_ms, now_ms))
        rows: list[SnapshotRow] = []
        parts = (("daily", found.days, DAY_MS), ("hourly", found.hours, HOUR_MS))
        for period, starts, step in parts:
            for first, last in spans(starts, step):
                rows += store.snapshots.snapshot_rows(period, first, last, org_id or "")
    return reports.summary(found, rows)


def _coverage(store: Store, start_ms: int, end_ms: int, now_ms: int) -> Coverage:
    first, last = hour_bounds(start_ms, end_ms)
    snapshots = store.snapshots

    def within(starts: set[int], since: int) -> frozenset[int]:
        return frozenset(start for start in starts if since <= start < last)

    day = first - first % DAY_MS
    return Coverage(
        daily=within(snapshots.platform_starts("daily", day), day),
        hourly=within(snapshots.platform_starts("hourly", first), first),
        dirty_daily=within(snapshots.dirty_starts("daily"), day),
        dirty_hourly=within(snapshots.dirty_starts("hourly"), first),
        history_start_ms=store.horizons.load().history_start_ms,
        now_ms=now_ms,
    )
