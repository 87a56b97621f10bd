"""The org breakdown's totals on SQLite, in the form that reads fewer index entries for
the range: seeking every organisation stored for the period, or sorting out the distinct
organisations of the range's own entries. Both give the same answer; the choice only
decides the speed (docs/decisions/org-breakdown-reads.md)."""

from __future__ import annotations

import sqlite3

from exporter.records import OrgTotals

_ONE_ORG = (
    " FROM snapshots INDEXED BY snapshots_totals WHERE period = ?1 AND scope = o.org_id"
    " AND period_start_ms >= ?2 AND period_start_ms < ?3"
)
_RANKED = (
    f" ranked(org_id, received) AS (SELECT org_id, (SELECT SUM(artifacts_received){_ONE_ORG})"
    " FROM o WHERE org_id IS NOT NULL ORDER BY 2 DESC, 1 LIMIT ?4)"
    f" SELECT org_id, received, (SELECT SUM(artifacts_completed){_ONE_ORG}),"
    f" (SELECT SUM(artifacts_failed){_ONE_ORG}), (SELECT TOTAL(ai_cost_usd){_ONE_ORG})"
    " FROM ranked AS o WHERE received IS NOT NULL ORDER BY 2 DESC, 1"
)
_STORED_ORGS = (
    "WITH RECURSIVE o(org_id) AS (SELECT MIN(scope) FROM snapshots INDEXED BY snapshots_totals"
    " WHERE period = ?1 AND scope > '' UNION ALL SELECT (SELECT MIN(scope) FROM snapshots"
    " INDEXED BY snapshots_totals WHERE period = ?1 AND scope > o.org_id) FROM o"
    " WHERE o.org_id IS NOT NULL)"
)
ORG_TOTALS = f"{_STORED_ORGS},{_RANKED}"
"""The totals without sorting the range's rows by organisation: ``o`` steps through the
organisations stored for ``period`` (one index seek each), ``ranked`` sums each one's
received over the range from its own run of ``snapshots_totals`` entries and keeps the
busiest ``limit`` (an org with no row in the range sums to NULL, which sorts last, and is
dropped after the limit), and only those get their other sums. Each sum reads its org's
rows in start order, as the GROUP BY it replaced did."""
_IN_RANGE = (
    " FROM snapshots INDEXED BY sqlite_autoindex_snapshots_1 WHERE period = ?1"
    " AND period_start_ms >= ?2 AND period_start_ms < ?3 AND scope > ''"
)
ORG_TOTALS_SHORT = f"WITH o(org_id) AS (SELECT DISTINCT scope{_IN_RANGE}),{_RANKED}"
"""The same with the organisations found as the distinct scopes of the range's own
entries (in start order): organisations stored for the period but quiet in the range
cost nothing, each of the range's entries costs a sort step."""
COUNT_STORED = f"SELECT COUNT(org_id) FROM ({_STORED_ORGS} SELECT org_id FROM o)"
COUNT_IN_RANGE = f"SELECT COUNT(*) FROM (SELECT 1{_IN_RANGE} LIMIT ?4)"
SORTS_PER_SEEK = 4
"""Sorting about four of the range's entries costs as much as seeking one stored org."""
GENERATION = "SELECT generation FROM snapshot_writes WHERE period = ?1"
"""Moves with every write of the period's snapshots (``written``): the count of stored orgs
is taken again then, once per connection; writes of the other period leave it."""


def written(conn: sqlite3.Connection, period: str) -> None:
    """Record, in the writer's transaction, that ``period``'s snapshots changed."""
    conn.execute(
        "INSERT INTO snapshot_writes VALUES (?, 1)"
        " ON CONFLICT (period) DO UPDATE SET generation = generation + 1",
        (period,),
    )


class SqliteOrgTotals:
    """``org_totals`` for one connection, with its count of stored orgs per period."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._stored: dict[str, tuple[int, int | None]] = {}

    def org_totals(self, period: str, start_ms: int, end_ms: int, limit: int) -> list[OrgTotals]:
        """Per-org sums over snapshots starting in ``[start_ms, end_ms)``, busiest first."""
        sql = ORG_TOTALS_SHORT if self.short_form(period, start_ms, end_ms) else ORG_TOTALS
        rows = self._conn.execute(sql, (period, start_ms, end_ms, limit))
        return [OrgTotals(*row) for row in rows]

    def short_form(self, period: str, start_ms: int, end_ms: int) -> bool:
        """Whether sorting the range's entries costs less than seeking every stored org:
        the range's entries are counted only up to where that stops (a cheap walk of the
        index, about a quarter of a sort step each)."""
        budget = SORTS_PER_SEEK * self._stored_orgs(period)
        (entries,) = self._conn.execute(
            COUNT_IN_RANGE, (period, start_ms, end_ms, budget + 1)
        ).fetchone()
        return bool(entries <= budget)

    def _stored_orgs(self, period: str) -> int:
        found = self._conn.execute(GENERATION, (period,)).fetchone()
        generation = None if found is None else int(found[0])
        if period not in self._stored or self._stored[period][1] != generation:
            (count,) = self._conn.execute(COUNT_STORED, (period,)).fetchone()
            self._stored[period] = (int(count), generation)
        return self._stored[period][0]
