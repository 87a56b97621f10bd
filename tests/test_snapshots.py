"""Snapshot SQL: the hourly digest bucketing in SQL agrees with ``rollup.digest`` on every
duration, edge values included (zero, subnormals, the floor and its neighbours, bucket edges,
the largest durations), on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exporter.catalog import LATENCY_TYPES
from exporter.records import LatencyGroup
from exporter.storage.postgres.connection import Connection
from exporter.storage.postgres.connection import connect as pg_connect
from exporter.storage.postgres.partitions import Partitions
from exporter.storage.postgres.snapshots import PgSnapshots
from exporter.storage.sqlite.connection import connect
from exporter.storage.sqlite.snapshots import SqliteSnapshots
from rollup.digest import GAMMA, MIN_MS, DigestBuilder
from tests.backends import fresh_database

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
    found = tally(SqliteSnapshots(conn).latency_groups(0, 1, GAMMA, MIN_MS))
    conn.close()
    return found


def pg_buckets(conn: Connection, durations: list[float]) -> tuple[int, dict[int, int]]:
    """The same on PostgreSQL (the events of one call are removed afterwards)."""
    Partitions(conn).ensure({0})
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO events (event_id, event_type, ts_ms, received_ms, duration_ms)"
            " VALUES (%s, %s, 0, 0, %s)",
            [(f"e{next(_ids)}", LATENCY_TYPES[0], d) for d in durations],
        )
    found = tally(PgSnapshots(conn).latency_groups(0, 1, GAMMA, MIN_MS))
    conn.execute("TRUNCATE events")
    return found


def tally(groups: list[LatencyGroup]) -> tuple[int, dict[int, int]]:
    """(zero count, bucket -> count) of the one (org, type) group the examples make."""
    assert len(groups) == 1
    return groups[0].zero_count, dict(groups[0].buckets)


@pytest.fixture(scope="module")
def pg() -> Iterator[Connection]:
    """One PostgreSQL database for the module's examples."""
    with fresh_database() as url:
        conn = pg_connect(url)
        yield conn
        conn.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(EDGES) | st.floats(0, 1e12), min_size=1, max_size=30))
def test_snapshots_sql_buckets_agree_with_the_digest(durations: list[float]) -> None:
    digest = DigestBuilder()
    digest.extend(durations)
    built = digest.build()
    assert sql_buckets(durations) == (built.zero_count, built.buckets)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(EDGES) | st.floats(0, 1e12), min_size=1, max_size=30))
def test_postgres_sql_buckets_agree_with_the_digest(pg: Connection, durations: list[float]) -> None:
    # PostgreSQL raises on a float sum that overflows where SQLite returns inf; stored
    # durations are bounded far below that (WIRE_MAX_DURATION_MS), so only the sum is spared
    assume(math.isfinite(sum(durations)))
    digest = DigestBuilder()
    digest.extend(durations)
    built = digest.build()
    assert pg_buckets(pg, durations) == (built.zero_count, built.buckets)


def test_postgres_sql_buckets_every_edge_as_the_digest(pg: Connection) -> None:
    digest = DigestBuilder()
    digest.extend(EDGES)
    built = digest.build()
    assert pg_buckets(pg, EDGES) == (built.zero_count, built.buckets)
    assert pg_buckets(pg, [0.0, 5e-324, 1e-300, 1e-9, MIN_MS, 0.5]) == (1, {-345: 4, -34: 1})


def test_snapshots_sql_clamps_durations_below_the_floor_into_its_bucket() -> None:
    zero, buckets = sql_buckets([0.0, 5e-324, 1e-300, 1e-9, MIN_MS, 0.5])
    assert (zero, buckets) == (1, {-345: 4, -34: 1})
