"""The daily rollup reads its hourly rows in batches (on PostgreSQL scope after scope, a
helper thread fetching the next batch while the job decodes and merges the scopes already
whole): the batches hold exactly the rows ``snapshot_rows`` gives, and a day spread over
several batches merges per scope, in start order, as one read of all its rows would, on
both backends."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.records import PartsRow, SnapshotRow
from exporter.storage.postgres.connection import connect
from exporter.storage.postgres.store import PgStore
from exporter.timestamps import datetime_to_ms
from rollup import jobs
from rollup.codec import decode_parts, encode_parts
from rollup.daily_merge import DailyMerge
from rollup.digest import LatencyDigest
from rollup.parts import SnapshotParts
from tests.backends import both, empty_database, store_for

DAY = datetime(2026, 11, 27, tzinfo=UTC)
NOW = DAY + timedelta(days=1, hours=3)
ORGS = 25
"""25 orgs and the platform over 24 hours: 624 rows, three of PostgreSQL's batches."""


def hourly_row(hour: int, scope: str, n: int) -> SnapshotRow:
    """A row whose sums tell its hours apart (cost adds 0.1 per hour: not associative in
    floating point, so a merge out of start order shows) and whose digest has one duration."""
    parts = SnapshotParts(
        artifacts_received=n * 100 + hour, artifacts_completed=hour, artifacts_failed=n,
        end_to_end=LatencyDigest.of([1000.0 * (hour + 1) + n]), ai_cost_usd=0.1 * (hour + n),
    )  # fmt: skip
    return SnapshotRow("hourly", datetime_to_ms(DAY) + hour * 3_600_000, scope,
                       parts.artifacts_received, parts.artifacts_completed,
                       parts.artifacts_failed, parts.ai_cost_usd, encode_parts(parts),
                       parts.end_to_end.to_bytes())  # fmt: skip


def parts_row(hour: int, scope: str, n: int) -> PartsRow:
    row = hourly_row(hour, scope, n)
    return row.period_start_ms, row.scope, row.parts


def store_day(store: Any, scopes: list[str]) -> None:
    """The day's 24 hours of ``hourly_row`` for each scope (the n-th scope's number n)."""
    with store.transaction():
        store.horizons.extend_history(datetime_to_ms(DAY))
    for hour in range(24):
        found = [hourly_row(hour, scope, n) for n, scope in enumerate(scopes)]
        start = datetime_to_ms(DAY) + hour * 3_600_000
        store.write(lambda s, f=found, t=start: s.snapshots.replace_snapshots("hourly", t, f))


@both
def test_daily_rollup_reads_its_hours_in_batches_and_merges_each_scope_in_start_order(
    database_url: str, tmp_path: Path
) -> None:
    scopes = ["", *(f"org-{n:02d}" for n in range(1, ORGS + 1))]
    with closing(store_for(database_url, tmp_path)) as store:
        store_day(store, scopes)
        start, end = datetime_to_ms(DAY), datetime_to_ms(DAY + timedelta(days=1))
        batches: list[list[PartsRow]] = []
        with store.read_transaction():
            store.snapshots.read_parts("hourly", start, end, batches.append)
            whole = [(r.period_start_ms, r.scope, r.parts)
                     for r in store.snapshots.snapshot_rows("hourly", start, end)]  # fmt: skip
        assert len(whole) == 24 * len(scopes)
        flat = [row for batch in batches for row in batch]
        assert {type(part) for row in flat for part in row} == {int, str, bytes}
        scope_after_scope = sorted(whole, key=lambda r: (r[1], r[0]))
        assert flat == (scope_after_scope if database_url else whole)
        assert [len(batch) for batch in batches] == ([256, 256, 112] if database_url else [624])
        merging, merged = DailyMerge(DAY), []
        for batch in batches:
            merging.take(batch)
            merged.append(len(merging.daily))
        # each batch leaves every scope before its last whole: 10 on PostgreSQL after the
        # first (too few to merge yet), 21 after the second; SQLite's one batch, 25
        assert merged == ([0, 21, 21] if database_url else [25])
        assert [row.scope for row in merging.daily_rows()] == scopes
        assert jobs.rollup_day(store, jobs.direct_write(store), DAY, NOW) == len(scopes)
        daily = store.snapshots.snapshot_rows("daily", start, end)
    assert [row.scope for row in daily] == scopes
    for n, row in enumerate(daily):
        cost = 0.0
        for hour in range(24):
            cost += 0.1 * (hour + n)
        parts = decode_parts(row.parts)
        assert (parts.artifacts_received, parts.artifacts_completed, parts.artifacts_failed) == (
            24 * n * 100 + 276, 276, 24 * n)  # fmt: skip
        assert parts.ai_cost_usd == row.ai_cost_usd == cost
        assert parts.end_to_end.count == 24
        assert (parts.end_to_end.min, parts.end_to_end.max) == (1000.0 + n, 24_000.0 + n)


def test_daily_rollup_on_a_database_whose_byte_order_is_not_pythons() -> None:
    """In WIN1252 '€' is the byte 0x80, before 'é' (0xE9), where Python puts U+20AC after
    U+00E9: the database's scope order is not ``str``'s, and the daily job still merges
    each scope once, after all its rows (it goes by where the read moves to another scope)."""
    options = "ENCODING 'WIN1252' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
    scopes = ["", "€", *(f"é{n:02d}" for n in range(30))]
    with empty_database(options) as url, closing(PgStore(connect(url))) as store:
        store_day(store, scopes)
        assert jobs.rollup_day(store, jobs.direct_write(store), DAY, NOW) == len(scopes)
        daily = store.snapshots.snapshot_rows("daily", datetime_to_ms(DAY), datetime_to_ms(NOW))
    assert sorted(row.scope for row in daily) == sorted(scopes)
    received = {row.scope: row.artifacts_received for row in daily}
    assert received == {scope: 24 * n * 100 + 276 for n, scope in enumerate(scopes)}


def test_daily_merge_refuses_rows_of_a_scope_it_already_merged() -> None:
    """A read that did not keep a scope's rows together fails the job, naming the scope,
    instead of storing a sum without the late rows (or two rows for the scope)."""
    merging = DailyMerge(DAY)
    scopes = [f"org-{n:02d}" for n in range(14)]
    merging.take([parts_row(0, scope, n) for n, scope in enumerate(scopes)])
    assert sorted(row.scope for row in merging.daily) == ["", *scopes[:13]]
    with pytest.raises(ValueError, match="scope 'org-03' came after it was merged"):
        merging.take([parts_row(1, "org-03", 3)])
