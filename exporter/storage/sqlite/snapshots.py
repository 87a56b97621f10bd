"""Snapshot SQL: per-hour GROUP BY aggregation over events, snapshot rows, dirty windows,
job run records and retention deletes. Times are UTC epoch ms; windows are [start, end)."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Sequence

from exporter.catalog import LATENCY_TYPES
from exporter.records import GroupRow, LatencyGroup, OrgTotals, SnapshotRow
from exporter.storage.base import TakeDigests, TakeParts
from exporter.storage.sqlite.org_totals import SqliteOrgTotals, written
from exporter.storage.sqlite.paired import Pair


class SqliteSnapshots:
    """Snapshot rows, the hourly aggregation queries, dirty windows and snapshot retention."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._pair = Pair(conn)
        self._org_totals = SqliteOrgTotals(conn)

    def hourly_aggregates(
        self, start_ms: int, end_ms: int, gamma: float, floor_ms: float
    ) -> tuple[list[GroupRow], list[LatencyGroup]]:
        """``group_rows`` and ``latency_groups`` of one window on the caller's snapshot, at
        once on two more connections where they can be (``paired``); call inside a read
        transaction."""
        return self._pair.run(
            (start_ms, end_ms),
            lambda c: SqliteSnapshots(c).group_rows(start_ms, end_ms),
            lambda c: SqliteSnapshots(c).latency_groups(start_ms, end_ms, gamma, floor_ms),
        )

    def close(self) -> None:
        """Close the connections ``hourly_aggregates`` opened, if any."""
        self._pair.close()

    def group_rows(self, start_ms: int, end_ms: int) -> list[GroupRow]:
        """Counts and metadata sums of events with event time in ``[start_ms, end_ms)``."""
        rows = self._conn.execute(
            "SELECT org_id, event_type, stage, COUNT(*), TOTAL(ai_cost_usd),"
            " COUNT(confidence), TOTAL(confidence), COALESCE(SUM(entity_count), 0),"
            " COALESCE(SUM(auto_resolved_count), 0), COALESCE(SUM(disambiguation_count), 0),"
            " COALESCE(SUM(claim_count), 0), COALESCE(SUM(draft_count), 0)"
            " FROM events WHERE ts_ms >= ? AND ts_ms < ? GROUP BY org_id, event_type, stage",
            (start_ms, end_ms),
        )
        return [GroupRow(*row) for row in rows]

    def latency_groups(
        self, start_ms: int, end_ms: int, gamma: float, floor_ms: float
    ) -> list[LatencyGroup]:
        """Durations of latency-bearing events in ``[start_ms, end_ms)`` per org and event
        type, bucketed in SQL exactly as ``rollup.digest.digest_index`` does in Python
        (``ceil(ln(d)/ln(gamma))`` corrected at bucket edges with the same ``pow``, a duration
        under ``floor_ms`` in the floor's bucket), 0 ms counted apart, so no duration crosses
        into Python and both paths agree on every value. The buckets of one (org, type) come
        back as two JSON arrays (indices, counts) in one row: Python handles a row per
        (org, type), not one per occupied bucket. Count, sum, min and max are of the exact
        durations. The hour is found by its time (``+event_type`` keeps the planner off
        the index by type, which would visit that type's events of every stored hour)."""
        marks = ",".join("?" * len(LATENCY_TYPES))
        rows = self._conn.execute(
            "SELECT org_id, event_type, SUM(n), SUM(s), MIN(lo), MAX(hi),"
            " TOTAL(n) FILTER (WHERE k IS NULL), json_group_array(k) FILTER (WHERE k IS NOT NULL),"
            " json_group_array(n) FILTER (WHERE k IS NOT NULL) FROM (SELECT org_id, event_type,"
            " CASE WHEN d > 0 THEN CASE WHEN b > pow(?, r) THEN r + 1"
            " WHEN b <= pow(?, r - 1) THEN r - 1 ELSE r END END AS k,"
            " COUNT(*) AS n, SUM(d) AS s, MIN(d) AS lo, MAX(d) AS hi FROM (SELECT org_id,"
            " event_type, d, b, CAST(ceil(ln(b) * ?) AS INTEGER) AS r FROM (SELECT org_id,"
            " event_type, duration_ms AS d, MAX(duration_ms, ?) AS b FROM events"
            " WHERE ts_ms >= ? AND ts_ms < ? AND duration_ms IS NOT NULL"
            f" AND +event_type IN ({marks}))) GROUP BY 1, 2, 3) GROUP BY 1, 2",
            (gamma, gamma, 1.0 / math.log(gamma), floor_ms, start_ms, end_ms, *LATENCY_TYPES),
        )
        return [
            LatencyGroup(org, kind, n, total, low, high, int(zero),
                         dict(zip(json.loads(keys), json.loads(counts), strict=True)))
            for org, kind, n, total, low, high, zero, keys, counts in rows
        ]  # fmt: skip

    def replace_snapshots(
        self, period: str, period_start_ms: int, rows: Sequence[SnapshotRow]
    ) -> None:
        """Make ``rows`` the only snapshots of one window (inside the caller's transaction), so
        re-running a job leaves exactly the rows one run leaves."""
        self._conn.execute(
            "DELETE FROM snapshots WHERE period = ? AND period_start_ms = ?",
            (period, period_start_ms),
        )
        self._conn.executemany(
            "INSERT INTO snapshots (period, period_start_ms, scope, artifacts_received,"
            " artifacts_completed, artifacts_failed, ai_cost_usd, parts, end_to_end)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r.period, r.period_start_ms, r.scope, r.artifacts_received, r.artifacts_completed,
                 r.artifacts_failed, r.ai_cost_usd, r.parts, r.end_to_end)
                for r in rows
            ],
        )  # fmt: skip
        written(self._conn, period)

    def snapshot_rows(
        self,
        period: str,
        start_ms: int,
        end_ms: int,
        scope: str | None = None,
    ) -> list[SnapshotRow]:
        """Snapshots of ``period`` starting in ``[start_ms, end_ms)``, ascending; one scope
        (``""`` = platform) or all scopes when ``scope`` is None."""
        columns = (
            "SELECT period, period_start_ms, scope, artifacts_received, artifacts_completed,"
            " artifacts_failed, ai_cost_usd, parts, end_to_end FROM snapshots"
        )
        if scope is None:
            sql = f"{columns} WHERE period = ? AND period_start_ms >= ? AND period_start_ms < ?"
            args: tuple[object, ...] = (period, start_ms, end_ms)
        else:  # one scope: seek its rows instead of scanning every scope's large rows
            sql = (
                f"{columns} INDEXED BY snapshots_by_scope"
                " WHERE period = ? AND scope = ? AND period_start_ms >= ? AND period_start_ms < ?"
            )
            args = (period, scope, start_ms, end_ms)
        rows = self._conn.execute(sql + " ORDER BY period_start_ms, scope", args)
        return [SnapshotRow(*row) for row in rows]

    def read_parts(self, period: str, start_ms: int, end_ms: int, take: TakeParts) -> None:
        """``take`` the parts rows of all scopes, in ``snapshot_rows``'s order and in one
        batch (so every scope is whole once it is taken, as ``TakeParts`` asks)."""
        rows = self._conn.execute(
            "SELECT period_start_ms, scope, parts FROM snapshots WHERE period = ?"
            " AND period_start_ms >= ? AND period_start_ms < ? ORDER BY period_start_ms, scope",
            (period, start_ms, end_ms),
        )
        take(rows.fetchall())

    def platform_starts(self, period: str, since_ms: int) -> set[int]:
        """Window starts at or after ``since_ms`` that have a platform snapshot."""
        rows = self._conn.execute(
            "SELECT period_start_ms FROM snapshots"
            " WHERE period = ? AND scope = '' AND period_start_ms >= ?",
            (period, since_ms),
        )
        return {row[0] for row in rows}

    def has_snapshot(self, period: str, period_start_ms: int) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM snapshots WHERE period = ? AND period_start_ms = ? AND scope = ''",
            (period, period_start_ms),
        ).fetchone()
        return row is not None

    def mark_dirty(self, period: str, starts: Iterable[int]) -> None:
        """Flag windows for re-aggregation; each mark bumps the window's generation, so a
        rollup that read an older generation cannot clear it (see ``clear_dirty``)."""
        self._conn.executemany(
            "INSERT INTO dirty_windows (period, period_start_ms, generation) VALUES (?, ?, 1)"
            " ON CONFLICT (period, period_start_ms) DO UPDATE SET generation = generation + 1",
            [(period, start) for start in starts],
        )

    def dirty_starts(self, period: str) -> set[int]:
        rows = self._conn.execute(
            "SELECT period_start_ms FROM dirty_windows WHERE period = ?", (period,)
        )
        return {row[0] for row in rows}

    def dirty_generation(self, period: str, period_start_ms: int) -> int | None:
        """The window's mark generation, None when it is not dirty (read it in the same
        transaction as the rows the rollup aggregates)."""
        row = self._conn.execute(
            "SELECT generation FROM dirty_windows WHERE period = ? AND period_start_ms = ?",
            (period, period_start_ms),
        ).fetchone()
        return None if row is None else int(row[0])

    def clear_dirty(self, period: str, period_start_ms: int, generation: int | None) -> None:
        """Clear the mark the rollup read (in the transaction that writes its new rows); a mark
        set since then has a higher generation and stays, so its events are aggregated by the
        next run. A crash before the write leaves the mark too."""
        if generation is None:
            return
        self._conn.execute(
            "DELETE FROM dirty_windows WHERE period = ? AND period_start_ms = ? AND generation = ?",
            (period, period_start_ms, generation),
        )

    def count_snapshots(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT period, COUNT(*) FROM snapshots GROUP BY period")
        return {"hourly": 0, "daily": 0} | {period: n for period, n in rows}

    def delete_snapshots_before(self, period: str, cutoff_ms: int, limit: int) -> int:
        """Delete at most ``limit`` snapshots of ``period`` starting strictly before
        ``cutoff_ms``; returns how many went."""
        deleted = self._conn.execute(
            "DELETE FROM snapshots WHERE (period, period_start_ms, scope) IN"
            " (SELECT period, period_start_ms, scope FROM snapshots"
            " WHERE period = ? AND period_start_ms < ? LIMIT ?)",
            (period, cutoff_ms, limit),
        ).rowcount
        if deleted:
            written(self._conn, period)
        return int(deleted)

    def count_snapshots_before(self, period: str, cutoff_ms: int) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM snapshots WHERE period = ? AND period_start_ms < ?",
            (period, cutoff_ms),
        ).fetchone()
        return int(row[0])

    def delete_dirty_before(self, period: str, cutoff_ms: int) -> int:
        """Forget dirty marks of ``period`` windows that can no longer be re-aggregated."""
        return self._conn.execute(
            "DELETE FROM dirty_windows WHERE period = ? AND period_start_ms < ?",
            (period, cutoff_ms),
        ).rowcount

    def org_totals(self, period: str, start_ms: int, end_ms: int, limit: int) -> list[OrgTotals]:
        """Per-org sums over snapshots starting in ``[start_ms, end_ms)``, busiest first."""
        return self._org_totals.org_totals(period, start_ms, end_ms, limit)

    def end_to_end_digests(
        self, period: str, start_ms: int, end_ms: int, org_ids: Sequence[str], take: TakeDigests
    ) -> None:
        """``take`` the orgs' digest runs in one batch (per org, how many end-to-end digests
        it stored over the range and their bytes concatenated in start order; each is
        self-delimiting msgpack), from one query: one row per org, not per snapshot, read
        from the index that holds the digests."""
        rows = self._conn.execute(
            "SELECT scope, COUNT(*), CAST(group_concat(end_to_end, x'') AS BLOB)"
            " FROM snapshots INDEXED BY snapshots_end_to_end"
            " WHERE period = ? AND scope IN (SELECT value FROM json_each(?))"
            " AND period_start_ms >= ? AND period_start_ms < ? AND end_to_end IS NOT NULL"
            " GROUP BY scope",
            (period, json.dumps(list(org_ids)), start_ms, end_ms),
        )
        take({scope: (count, blob) for scope, count, blob in rows})
