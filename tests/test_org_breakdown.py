"""The organisation breakdown against a brute-force reference, on both backends: its
totals (``org_totals``) over random snapshot rows of both periods inside and outside the
range, orgs whose every row lies outside it, orgs that received nothing, ties broken by
id; and the whole answer over more orgs than one batch of digests. PostgreSQL's digest
read-ahead when either side fails."""

from __future__ import annotations

import itertools
import random
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from exporter.http.context import BACKEND
from exporter.records import OrgTotals, SnapshotRow
from exporter.storage.postgres.read_ahead import BATCH, read_ahead
from exporter.storage.sqlite.org_totals import ORG_TOTALS, ORG_TOTALS_SHORT, SqliteOrgTotals
from exporter.timestamps import format_rfc3339
from rollup.digest import LatencyDigest
from tests.backends import both, fresh_database, store_for
from tests.queries_data import get

DAY_MS = 86_400_000
D0 = 1_795_824_000_000  # 2026-11-28T00:00Z


def random_days(rng: random.Random, days: int) -> dict[tuple[str, int], list[SnapshotRow]]:
    """Rows per (period, start): 60 orgs with ids that sort around each other (and around
    the platform's ''), received 0-3 so ties are common, costs with long fractions."""
    orgs = [f"org-{rng.choice('abc')}{i:02d}" for i in range(57)] + [" ", "!", "\u00e9t\u00e9"]
    windows: dict[tuple[str, int], list[SnapshotRow]] = {}
    for period in ("daily", "hourly"):
        for day in range(days):
            start = D0 + day * DAY_MS
            scopes = ["", *rng.sample(orgs, rng.randrange(1, len(orgs)))]
            windows[period, start] = [
                SnapshotRow(period, start, scope, received, rng.randrange(4), rng.randrange(3),
                            rng.random() / 7, b"p", None)
                for scope in scopes for received in [rng.randrange(4)]
            ]  # fmt: skip
    return windows


def reference(
    windows: dict[tuple[str, int], list[SnapshotRow]],
    period: str,
    start_ms: int,
    end_ms: int,
    limit: int,
) -> list[OrgTotals]:
    """Sums per org over the ``period`` rows starting in the range, in start order."""
    sums: dict[str, list[float]] = {}
    for (kind, start), found in sorted(windows.items(), key=lambda item: item[0][1]):
        if kind != period or not start_ms <= start < end_ms:
            continue
        for row in found:
            if row.scope:
                total = sums.setdefault(row.scope, [0, 0, 0, 0.0])
                for i, value in enumerate((row.artifacts_received, row.artifacts_completed,
                                           row.artifacts_failed, row.ai_cost_usd)):  # fmt: skip
                    total[i] += value
    ranked = sorted(sums.items(), key=lambda item: (-item[1][0], item[0].encode()))[:limit]
    return [OrgTotals(org, int(r), int(c), int(f), x) for org, (r, c, f, x) in ranked]


@both
@pytest.mark.parametrize("seed", range(3))
def test_org_totals_equal_the_reference_for_every_range_and_limit(
    database_url: str, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    windows = random_days(rng, 12)
    with closing(store_for(database_url, tmp_path)) as store:
        for (period, start), found in windows.items():
            store.write(lambda s, p=period, t=start, f=found: s.snapshots.replace_snapshots(
                p, t, f))  # fmt: skip
        for period, (first, last, limit) in itertools.product(("daily", "hourly"), [
            (0, 12, 1000), (0, 12, 7), (3, 5, 10), (11, 12, 1), (5, 5, 3), (-3, 1, 1000),
            (12, 20, 5),
        ]):  # fmt: skip
            start_ms, end_ms = D0 + first * DAY_MS, D0 + last * DAY_MS
            args = (period, start_ms, end_ms, limit)
            with store.read_transaction():
                answers = [store.snapshots.org_totals(*args)]
                if not database_url:  # SQLite: both forms, whichever the range would pick
                    answers += [[OrgTotals(*row) for row in store.connection.execute(sql, args)]
                                for sql in (ORG_TOTALS, ORG_TOTALS_SHORT)]  # fmt: skip
            expected = reference(windows, *args)
            for found in answers:
                assert [(t.org_id, t.received, t.completed, t.failed) for t in found] == [
                    (t.org_id, t.received, t.completed, t.failed) for t in expected
                ], (period, first, last, limit)
                assert [t.ai_cost_usd for t in found] == pytest.approx(
                    [t.ai_cost_usd for t in expected], rel=1e-12, abs=0
                )


def test_sqlite_org_totals_seek_each_org_and_sort_no_rows(tmp_path: Path) -> None:
    """SQLite reads each organisation's run of ``snapshots_totals`` entries: over a long
    range no temporary B-tree groups the range's rows (it sorted 90,000 of them for a
    90-day breakdown), only the organisations' sums are ordered; over a short one the
    organisations are the distinct scopes of the range's own entries."""
    with closing(store_for("", tmp_path)) as store:

        def searches(sql: str, days: int) -> tuple[list[str], list[str]]:
            rows = store.connection.execute(
                "EXPLAIN QUERY PLAN " + sql, ("daily", D0, D0 + days * DAY_MS, 100)
            )
            plan = [row[3] for row in rows]
            return [s for s in plan if s.startswith("SEARCH")], [s for s in plan if "TEMP" in s]

        seek = "SEARCH snapshots USING COVERING INDEX snapshots_totals (period=? AND scope>?)"
        one_org = (
            "SEARCH snapshots USING COVERING INDEX snapshots_totals"
            " (period=? AND scope=? AND period_start_ms>? AND period_start_ms<?)"
        )
        by_start = (
            "SEARCH snapshots USING COVERING INDEX sqlite_autoindex_snapshots_1"
            " (period=? AND period_start_ms>? AND period_start_ms<?)"
        )
        order = "USE TEMP B-TREE FOR ORDER BY"
        assert searches(ORG_TOTALS, 90) == ([seek, seek, *[one_org] * 4], [order] * 2)
        assert searches(ORG_TOTALS_SHORT, 24) == (
            [by_start, *[one_org] * 4], ["USE TEMP B-TREE FOR DISTINCT", order, order])  # fmt: skip


def test_sqlite_org_totals_sort_the_range_only_when_cheaper_than_seeking_stored_orgs(
    tmp_path: Path,
) -> None:
    """The short form when the range has at most four entries per stored org: 10 steady
    orgs over 10 days pick it for ranges of up to 4 days, not 5; orgs that come and go (10
    new a day) pick it for the whole 10 days. The stored orgs of a period are counted again
    after its snapshots were written (a new last day, a day re-rolled in between) or pruned,
    and not when only the other period's were."""
    with closing(store_for("", tmp_path)) as store:

        def put(period: str, day: int, orgs: range) -> None:
            found = [SnapshotRow(period, D0 + day * DAY_MS, f"org-{o:03d}", 1, 1, 0, 0.5, b"p",
                                 None) for o in orgs]  # fmt: skip
            store.write(lambda s: s.snapshots.replace_snapshots(period, D0 + day * DAY_MS, found))

        for day in range(10):
            put("daily", day, range(10))
            put("hourly", day, range(10 * day, 10 * day + 10))
        choice = SqliteOrgTotals(store.connection)
        counted: list[str] = []

        def short(period: str, first: int, last: int) -> bool:
            counted.clear()
            store.connection.set_trace_callback(counted.append)
            try:
                return choice.short_form(period, D0 + first * DAY_MS, D0 + last * DAY_MS)
            finally:
                store.connection.set_trace_callback(None)

        def recounted() -> int:
            return sum("COUNT(org_id)" in statement for statement in counted)

        assert [short("daily", 10 - days, 10) for days in (1, 4, 5, 10)] == [
            True, True, False, False]  # fmt: skip
        assert short("hourly", 0, 10) is True
        put("hourly", 10, range(500, 600))
        assert (short("daily", 5, 10), recounted()) == (False, 0)  # 50 entries > 4 * 10 orgs
        put("daily", 10, range(100, 200))
        assert (short("daily", 5, 10), recounted()) == (True, 1)  # 50 <= 4 * 110
        put("daily", 10, range(0))
        assert (short("daily", 5, 10), recounted()) == (False, 1)  # 10 orgs again
        put("daily", 3, range(200, 300))  # late events re-roll a day in between
        assert (short("daily", 5, 10), recounted()) == (True, 1)
        store.write(lambda s: s.snapshots.delete_snapshots_before("daily", D0 + 4 * DAY_MS, 999))
        assert (short("daily", 5, 10), recounted()) == (False, 1)  # pruned: 10 orgs
        store.write(lambda s: s.snapshots.delete_snapshots_before("daily", D0 + 4 * DAY_MS, 999))
        assert (short("daily", 5, 10), recounted()) == (False, 0)  # nothing left to prune


@both
async def test_org_breakdown_over_many_batches_equals_the_reference(start_app: Any) -> None:
    """150 orgs (three of PostgreSQL's read-ahead batches), 20 days with digests of a few
    durations each, some rows without one: every org's counts, cost and end-to-end avg and
    p95 equal those of its rows' digests merged in start order."""
    client = await start_app()
    rng = random.Random(7)
    kept: dict[str, list[SnapshotRow]] = {}
    for day in range(20):
        found = []
        for o in rng.sample(range(150), 120):
            durations = [rng.lognormvariate(7, 1) for _ in range(rng.randrange(1, 6))]
            digest = None if o % 9 == 0 else LatencyDigest.of(durations).to_bytes()
            found.append(SnapshotRow("daily", D0 + day * DAY_MS, f"org-{o:03d}", 1 + o % 7,
                                     o % 3, o % 2, 0.125 * o, b"p", digest))  # fmt: skip
        await client.app[BACKEND].writes.run(
            lambda s, f=found, t=D0 + day * DAY_MS: s.snapshots.replace_snapshots("daily", t, f)
        )
        for row in found:
            kept.setdefault(row.scope, []).append(row)
    window = {"period": "daily", "start": format_rfc3339(D0 + 2 * DAY_MS),
              "end": format_rfc3339(D0 + 18 * DAY_MS)}  # fmt: skip
    body = await get(client, "/v1/metrics/orgs", **window, limit="1000")
    expected = []
    for org, found in kept.items():
        inside = [r for r in found if D0 + 2 * DAY_MS <= r.period_start_ms < D0 + 18 * DAY_MS]
        if not inside:
            continue
        e2e = LatencyDigest.merge_all(
            LatencyDigest.from_bytes(r.end_to_end) for r in inside if r.end_to_end is not None
        )
        expected.append({
            "org_id": org, "received": sum(r.artifacts_received for r in inside),
            "ai_cost_usd": sum(r.ai_cost_usd for r in inside),
            "end_to_end_avg_ms": e2e.avg, "end_to_end_p95_ms": e2e.quantile(0.95),
        })  # fmt: skip
    expected.sort(key=lambda o: (-o["received"], o["org_id"]))
    assert len(expected) == 150
    assert [{k: o[k] for k in expected[0]} for o in body["orgs"]] == expected


@pytest.fixture
def pg_conn() -> Any:
    with fresh_database() as url, psycopg.connect(url) as conn:
        yield conn


def helpers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "voxmon-read-ahead"]


def test_read_ahead_stops_its_helper_when_the_caller_fails(pg_conn: Any) -> None:
    """``take`` raising on the second batch: the error reaches the caller, the helper has
    ended, the transaction still answers (no fetch left running on the connection)."""
    taken: list[int] = []

    def take(rows: list[Any]) -> None:
        taken.append(len(rows))
        if len(taken) == 2:
            raise ValueError("inconsistent latency digest")

    with pg_conn.transaction(), pg_conn.cursor(name="many") as cursor:
        cursor.execute("SELECT i FROM generate_series(1, %s) AS i", (BATCH * 5,))
        with pytest.raises(ValueError, match="inconsistent latency digest"):
            read_ahead(cursor, BATCH, take)
        assert helpers() == []
        assert pg_conn.execute("SELECT 41 + 1").fetchone() == (42,)
    assert taken == [BATCH, BATCH]


def test_read_ahead_raises_the_servers_error_after_the_batches_before(pg_conn: Any) -> None:
    """A row the server cannot compute, in the second batch: the first batch is taken, then
    the server's error is raised to the caller, from its own thread, helper ended."""
    taken: list[list[Any]] = []
    with pg_conn.cursor(name="failing") as cursor:
        cursor.execute("SELECT 1 / (i - %s) FROM generate_series(1, %s) AS i",
                       (BATCH + 3, BATCH * 3))  # fmt: skip
        with pytest.raises(psycopg.errors.DivisionByZero):
            read_ahead(cursor, BATCH, taken.append)
    assert [len(rows) for rows in taken] == [BATCH]
    assert helpers() == []
    pg_conn.rollback()
    assert pg_conn.execute("SELECT 1").fetchone() == (1,)
