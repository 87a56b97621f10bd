"""The organisation breakdown's totals (``org_totals``) against a brute-force reference, on
both backends: random snapshot rows of both periods inside and outside the range, orgs
whose every row lies outside it, orgs that received nothing, ties broken by id."""

from __future__ import annotations

import random
from contextlib import closing
from pathlib import Path

import pytest

from exporter.records import OrgTotals, SnapshotRow
from exporter.storage.sqlite.snapshots import ORG_TOTALS
from tests.backends import both, store_for

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
    windows: dict[tuple[str, int], list[SnapshotRow]], start_ms: int, end_ms: int, limit: int
) -> list[OrgTotals]:
    """Sums per org over the daily rows starting in the range, in start order."""
    sums: dict[str, list[float]] = {}
    for (period, start), found in sorted(windows.items(), key=lambda item: item[0][1]):
        if period != "daily" or not start_ms <= start < end_ms:
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
        for first, last, limit in [(0, 12, 1000), (0, 12, 7), (3, 5, 10), (11, 12, 1),
                                   (5, 5, 3), (-3, 1, 1000), (12, 20, 5)]:  # fmt: skip
            start_ms, end_ms = D0 + first * DAY_MS, D0 + last * DAY_MS
            with store.read_transaction():
                found = store.snapshots.org_totals("daily", start_ms, end_ms, limit)
            expected = reference(windows, start_ms, end_ms, limit)
            assert [(t.org_id, t.received, t.completed, t.failed) for t in found] == [
                (t.org_id, t.received, t.completed, t.failed) for t in expected
            ], (first, last, limit)
            assert [t.ai_cost_usd for t in found] == pytest.approx(
                [t.ai_cost_usd for t in expected], rel=1e-12, abs=0
            )


def test_sqlite_org_totals_seek_each_org_and_sort_no_rows(tmp_path: Path) -> None:
    """SQLite reads each organisation's run of ``snapshots_totals`` entries: no temporary
    B-tree groups the range's rows (it sorted 90,000 of them for a 90-day breakdown), only
    the organisations' sums are ordered."""
    with closing(store_for("", tmp_path)) as store:
        plan = [row[3] for row in store.connection.execute(
            "EXPLAIN QUERY PLAN " + ORG_TOTALS, ("daily", D0, D0 + DAY_MS, 100))]  # fmt: skip
    searches = [step for step in plan if step.startswith("SEARCH")]
    assert searches == [
        "SEARCH snapshots USING COVERING INDEX snapshots_totals (period=? AND scope>?)",
        "SEARCH snapshots USING COVERING INDEX snapshots_totals (period=? AND scope>?)",
        *["SEARCH snapshots USING COVERING INDEX snapshots_totals"
          " (period=? AND scope=? AND period_start_ms>? AND period_start_ms<?)"] * 4,
    ], plan  # fmt: skip
    assert [step for step in plan if "TEMP" in step] == ["USE TEMP B-TREE FOR ORDER BY"] * 2
