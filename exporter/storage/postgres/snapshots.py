"""Snapshot SQL: per-hour GROUP BY aggregation over events, snapshot rows, dirty windows
and retention deletes. Times are UTC epoch ms; windows are [start, end)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence

from exporter.catalog import LATENCY_TYPES
from exporter.records import GroupRow, LatencyGroup, OrgTotals, SnapshotRow
from exporter.storage.base import TakeDigests, TakeParts
from exporter.storage.postgres.connection import Connection
from exporter.storage.postgres.read_ahead import (
    SNAPSHOT_COLUMNS,
    read_digests,
    read_scope_runs,
)

# The hourly aggregations hash their groups (about 3,000 and 180,000 for a million events)
# instead of sorting a million rows: with the default work_mem (4 MB) the planner sorts on
# disk. Transaction-local, so it lasts for the rollup's read transaction only; no effect
# outside a transaction.
_AGGREGATION_MEMORY = "SELECT set_config('work_mem', '64MB', true)"
ORG_TOTALS = (
    "SELECT scope, SUM(artifacts_received)::bigint, SUM(artifacts_completed)::bigint,"
    " SUM(artifacts_failed)::bigint, COALESCE(SUM(ai_cost_usd), 0.0) FROM snapshots"
    " WHERE period = %s AND period_start_ms >= %s AND period_start_ms < %s"
    " AND scope != '' GROUP BY scope ORDER BY SUM(artifacts_received) DESC, scope LIMIT %s"
)
"""An index-only scan of ``snapshots_totals`` where the visibility map allows."""


class PgSnapshots:
    """Snapshot rows, the hourly aggregation queries, dirty windows and snapshot retention."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def hourly_aggregates(
        self, start_ms: int, end_ms: int, gamma: float, floor_ms: float
    ) -> tuple[list[GroupRow], list[LatencyGroup]]:
        """``group_rows`` and ``latency_groups`` in the caller's read transaction, one after
        the other (the server runs each on parallel workers where it chooses to)."""
        groups = self.group_rows(start_ms, end_ms)
        return groups, self.latency_groups(start_ms, end_ms, gamma, floor_ms)

    def group_rows(self, start_ms: int, end_ms: int) -> list[GroupRow]:
        """Counts and metadata sums of events with event time in ``[start_ms, end_ms)``."""
        self._conn.execute(_AGGREGATION_MEMORY)
        rows = self._conn.execute(
            f"SELECT org_id, event_type, stage, COUNT(*), COALESCE({_fsum('ai_cost_usd')}, 0.0),"
            f" COUNT(confidence), COALESCE({_fsum('confidence')}, 0.0),"
            " COALESCE(SUM(entity_count), 0)::bigint,"
            " COALESCE(SUM(auto_resolved_count), 0)::bigint,"
            " COALESCE(SUM(disambiguation_count), 0)::bigint,"
            " COALESCE(SUM(claim_count), 0)::bigint, COALESCE(SUM(draft_count), 0)::bigint"
            " FROM events WHERE ts_ms >= %s AND ts_ms < %s GROUP BY org_id, event_type, stage",
            (start_ms, end_ms),
        ).fetchall()
        return [GroupRow(*row) for row in rows]

    def latency_groups(
        self, start_ms: int, end_ms: int, gamma: float, floor_ms: float
    ) -> list[LatencyGroup]:
        """Durations of latency-bearing events in ``[start_ms, end_ms)`` per org and event
        type, bucketed exactly as ``rollup.digest`` does in Python (``bucketed_durations``),
        0 ms counted apart; the buckets of one (org, type) come back as two arrays in one
        row. Count, sum, min and max are of the exact durations; the sum adds the buckets'
        sums in bucket order, whichever order the inner aggregation produced them in."""
        self._conn.execute(_AGGREGATION_MEMORY)
        rows = self._conn.execute(
            "SELECT g, event_type, SUM(n)::bigint, SUM(s ORDER BY k), MIN(lo), MAX(hi),"
            " COALESCE(SUM(n) FILTER (WHERE k IS NULL), 0)::bigint,"
            " COALESCE(array_agg(k) FILTER (WHERE k IS NOT NULL), '{}'),"
            " COALESCE(array_agg(n) FILTER (WHERE k IS NOT NULL), '{}')"
            f" FROM ({bucketed_durations('org_id', 'ts_ms < %(end)s')})"
            " AS buckets (g, event_type, k, n, s, lo, hi) GROUP BY 1, 2",
            bucket_params(gamma, floor_ms, start_ms) | {"end": end_ms},
        ).fetchall()
        return [
            LatencyGroup(org, kind, n, total, low, high, zero, dict(zip(keys, counts, strict=True)))
            for org, kind, n, total, low, high, zero, keys, counts in rows
        ]

    def replace_snapshots(
        self, period: str, period_start_ms: int, rows: Sequence[SnapshotRow]
    ) -> None:
        """Make ``rows`` the only snapshots of one window (inside the caller's transaction)."""
        self._conn.execute(
            "DELETE FROM snapshots WHERE period = %s AND period_start_ms = %s",
            (period, period_start_ms),
        )
        if not rows:
            return
        with self._conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO snapshots ({SNAPSHOT_COLUMNS})"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (r.period, r.period_start_ms, r.scope, r.artifacts_received,
                     r.artifacts_completed, r.artifacts_failed, r.ai_cost_usd, r.parts,
                     r.end_to_end)
                    for r in rows
                ],
            )  # fmt: skip

    def snapshot_rows(
        self, period: str, start_ms: int, end_ms: int, scope: str | None = None
    ) -> list[SnapshotRow]:
        """Snapshots of ``period`` starting in ``[start_ms, end_ms)``, ascending; one scope
        (``""`` = platform) or all scopes when ``scope`` is None."""
        sql = (
            f"SELECT {SNAPSHOT_COLUMNS} FROM snapshots"
            " WHERE period = %s AND period_start_ms >= %s AND period_start_ms < %s"
        )
        args: tuple[object, ...] = (period, start_ms, end_ms)
        if scope is not None:
            sql, args = sql + " AND scope = %s", (*args, scope)
        sql += " ORDER BY period_start_ms, scope"
        rows = self._conn.execute(sql, args, binary=True).fetchall()  # see SNAPSHOT_COLUMNS
        return [SnapshotRow(*row) for row in rows]

    def read_parts(self, period: str, start_ms: int, end_ms: int, take: TakeParts) -> None:
        """``take`` the parts rows of all scopes, scope after scope
        (``read_ahead.read_scope_runs``). Inside a transaction, and not again from ``take``
        (one such cursor at a time)."""
        read_scope_runs(self._conn, period, start_ms, end_ms, take)

    def platform_starts(self, period: str, since_ms: int) -> set[int]:
        """Window starts at or after ``since_ms`` that have a platform snapshot."""
        rows = self._conn.execute(
            "SELECT period_start_ms FROM snapshots"
            " WHERE period = %s AND scope = '' AND period_start_ms >= %s",
            (period, since_ms),
        ).fetchall()
        return {int(row[0]) for row in rows}

    def has_snapshot(self, period: str, period_start_ms: int) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM snapshots WHERE period = %s AND period_start_ms = %s AND scope = ''",
            (period, period_start_ms),
        ).fetchone()
        return row is not None

    def mark_dirty(self, period: str, starts: Iterable[int]) -> None:
        """Flag windows for re-aggregation; each mark bumps the window's generation."""
        marked = sorted(set(starts))
        if marked:
            self._conn.execute(
                "INSERT INTO dirty_windows (period, period_start_ms, generation)"
                " SELECT %s, start, 1 FROM unnest(%s::bigint[]) AS start"
                " ON CONFLICT (period, period_start_ms)"
                " DO UPDATE SET generation = dirty_windows.generation + 1",
                (period, marked),
            )

    def dirty_starts(self, period: str) -> set[int]:
        rows = self._conn.execute(
            "SELECT period_start_ms FROM dirty_windows WHERE period = %s", (period,)
        ).fetchall()
        return {int(row[0]) for row in rows}

    def dirty_generation(self, period: str, period_start_ms: int) -> int | None:
        """The window's mark generation, None when it is not dirty."""
        row = self._conn.execute(
            "SELECT generation FROM dirty_windows WHERE period = %s AND period_start_ms = %s",
            (period, period_start_ms),
        ).fetchone()
        return None if row is None else int(row[0])

    def clear_dirty(self, period: str, period_start_ms: int, generation: int | None) -> None:
        """Clear the mark the rollup read; a mark set since then has a higher generation."""
        if generation is None:
            return
        self._conn.execute(
            "DELETE FROM dirty_windows"
            " WHERE period = %s AND period_start_ms = %s AND generation = %s",
            (period, period_start_ms, generation),
        )

    def count_snapshots(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT period, COUNT(*) FROM snapshots GROUP BY period")
        return {"hourly": 0, "daily": 0} | {str(p): int(n) for p, n in rows.fetchall()}

    def delete_snapshots_before(self, period: str, cutoff_ms: int, limit: int) -> int:
        """Delete at most ``limit`` snapshots of ``period`` starting before ``cutoff_ms``."""
        return self._conn.execute(
            "DELETE FROM snapshots WHERE (period, period_start_ms, scope) IN"
            " (SELECT period, period_start_ms, scope FROM snapshots"
            " WHERE period = %s AND period_start_ms < %s LIMIT %s)",
            (period, cutoff_ms, limit),
        ).rowcount

    def count_snapshots_before(self, period: str, cutoff_ms: int) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM snapshots WHERE period = %s AND period_start_ms < %s",
            (period, cutoff_ms),
        ).fetchone()
        return int(row[0]) if row else 0

    def delete_dirty_before(self, period: str, cutoff_ms: int) -> int:
        """Forget dirty marks of ``period`` windows that can no longer be re-aggregated."""
        return self._conn.execute(
            "DELETE FROM dirty_windows WHERE period = %s AND period_start_ms < %s",
            (period, cutoff_ms),
        ).rowcount

    def org_totals(self, period: str, start_ms: int, end_ms: int, limit: int) -> list[OrgTotals]:
        """Per-org sums over snapshots starting in ``[start_ms, end_ms)``, busiest first."""
        rows = self._conn.execute(ORG_TOTALS, (period, start_ms, end_ms, limit)).fetchall()
        return [OrgTotals(*row) for row in rows]

    def end_to_end_digests(
        self, period: str, start_ms: int, end_ms: int, org_ids: Sequence[str], take: TakeDigests
    ) -> None:
        """``take`` each batch of orgs' digest runs (``read_ahead.read_digests``)."""
        read_digests(self._conn, period, start_ms, end_ms, org_ids, take)


def bucketed_durations(group: str, where: str) -> str:
    """The query bucketing latency-bearing durations from ``%(start)s`` on (and ``where``)
    per ``group`` and event type exactly as ``rollup.digest`` does in Python
    (``ceil(ln(d)/ln(gamma))`` corrected at bucket edges with the same ``power``, a duration
    under the floor in the floor's bucket, 0 ms in its own bucket); count, sum, min and max
    of the exact durations. Parameters: ``bucket_params``."""
    return (
        f"SELECT g, event_type, CASE WHEN d > 0 THEN CASE WHEN b > {_power('r')}"
        f" THEN r + 1 WHEN b <= {_power('r - 1')} THEN r - 1 ELSE r END END,"
        f" COUNT(*), {_fsum('d')}, {_zero('MIN(d)')}, {_zero('MAX(d)')} FROM (SELECT g,"
        " event_type, d, b,"
        " ceil(ln(b) * %(inv)s::float8)::bigint AS r FROM (SELECT " + group + " AS g,"
        " event_type, duration_ms AS d, GREATEST(duration_ms, %(floor)s::float8) AS b"
        " FROM events WHERE ts_ms >= %(start)s AND " + where + " AND duration_ms IS NOT NULL"
        " AND event_type = ANY(%(types)s)) AS bounded) AS ranked GROUP BY 1, 2, 3"
    )


def _zero(extreme: str) -> str:
    """``MIN``/``MAX`` with a zero always +0: -0 equals 0, so either could come out
    depending on the order of the rows, and the stored digest's bytes with it (new events
    arrive as +0, ``validation``; rows stored before may hold -0). Adding +0 changes no
    other value."""
    return f"({extreme} + 0::float8)"


def _fsum(column: str) -> str:
    """The sum of a float8 column that does not depend on the order PostgreSQL adds it in
    (scan order, hash or sort aggregation, parallel workers): each value as the shortest
    decimal that reads back as it (its text: every voxmon connection sets
    ``connection.EXACT_FLOATS``; the direct cast to numeric keeps only 15 digits), those
    decimals added exactly as numeric, the total rounded once to float8. So re-running a
    window stores the same bytes whatever the plan (decisions/hourly-aggregation.md). The
    decimal is not the float's exact value (within half its last unit): for normal floats
    the total lands within about one unit of the exact sum's last digit; subnormal values
    (below 2.2e-308, which the event bounds allow but no real cost, confidence or duration
    has) are summed as their decimals, whose error relative to them is larger. A total
    past the largest float8 fails the statement, as float8 addition did."""
    return f"SUM({column}::text::numeric)::float8"


def bucket_params(gamma: float, floor_ms: float, start_ms: int) -> dict[str, object]:
    return {"g": gamma, "inv": 1.0 / math.log(gamma), "floor": floor_ms, "start": start_ms,
            "types": list(LATENCY_TYPES), "top": _top_exponent(gamma)}  # fmt: skip


def _power(exponent: str) -> str:
    """``gamma ** exponent`` as Python computes it: infinity past the largest float, where
    PostgreSQL's ``power`` would raise instead."""
    return (
        f"(CASE WHEN {exponent} > %(top)s THEN 'Infinity'::float8"
        f" ELSE power(%(g)s::float8, ({exponent})::float8) END)"
    )


def _top_exponent(gamma: float) -> int:
    """The largest integer ``i`` with a finite ``gamma ** i``."""
    top = math.floor(math.log(sys.float_info.max) / math.log(gamma))
    while math.isfinite(_pow(gamma, top + 1)):
        top += 1
    while not math.isfinite(_pow(gamma, top)):
        top -= 1
    return top


def _pow(gamma: float, exponent: int) -> float:
    try:
        return float(gamma**exponent)
    except OverflowError:
        return math.inf
