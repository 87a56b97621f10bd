"""Snapshot SQL: the hourly digest bucketing in SQL agrees with ``rollup.digest`` on every
duration, edge values included (zero, subnormals, the floor and its neighbours, bucket edges,
the largest durations)."""

from __future__ import annotations

import itertools
import math
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.catalog import LATENCY_TYPES
from exporter.storage.sqlite.connection import connect
from exporter.storage.sqlite.snapshots import SqliteSnapshots
from rollup.digest import GAMMA, MIN_MS, DigestBuilder

EDGES = [
    0.0, 5e-324, sys.float_info.min, 1e-300, 1e-9, 1e-6,
    math.nextafter(MIN_MS, 0.0), MIN_MS, math.nextafter(MIN_MS, 1.0),
    GAMMA**-345, GAMMA**-344, 0.5, 1.0, GAMMA, math.nextafter(GAMMA, 2.0), 3_600_000.0,
    2_592_000_000.0, 1e15, sys.float_info.max,
]  # fmt: skip
_ids = itertools.count()


def sql_buckets(durations: list[float]) -> tuple[int, dict[int, int]]:
    """(zero count, bucket -> count) of ``durations`` as the hourly SQL buckets them."""
    conn = connect(":memory:")
    conn.executemany(
        "INSERT INTO events (event_id, event_type, ts_ms, received_ms, duration_ms)"
        " VALUES (?, ?, 0, 0, ?)",
        [(f"e{next(_ids)}", LATENCY_TYPES[0], d) for d in durations],
    )
    zero, buckets = 0, {}
    for row in SqliteSnapshots(conn).latency_rows(0, 1, GAMMA, MIN_MS):
        if row.bucket is None:
            zero += row.count
        else:
            buckets[row.bucket] = row.count
    conn.close()
    return zero, buckets


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(EDGES) | st.floats(0, 1e12), min_size=1, max_size=30))
def test_snapshots_sql_buckets_agree_with_the_digest(durations: list[float]) -> None:
    digest = DigestBuilder()
    digest.extend(durations)
    built = digest.build()
    assert sql_buckets(durations) == (built.zero_count, built.buckets)


def test_snapshots_sql_clamps_durations_below_the_floor_into_its_bucket() -> None:
    zero, buckets = sql_buckets([0.0, 5e-324, 1e-300, 1e-9, MIN_MS, 0.5])
    assert (zero, buckets) == (1, {-345: 4, -34: 1})
