"""The window latency digests: minutes enter and leave with the window, SQL-bucketed rows
restore the same digest as the durations themselves, and a read reflects later commits."""

from __future__ import annotations

from exporter.live.latency import MinuteLatency
from exporter.records import LatencyRow
from rollup.buckets import GAMMA, MIN_MS, digest_index
from rollup.digest import DigestBuilder, LatencyDigest
from rollup.live_latency import LatencyWindows

MIN = 60_000
NOW = 1_795_860_000_000  # 10:00:00; the window is [09:01, 10:01)


def test_window_keeps_the_last_60_minutes_and_waits_for_future_ones() -> None:
    windows = LatencyWindows()
    windows.apply(
        [
            ("transcription", NOW - 59 * MIN, 1000.0),  # 09:01, the oldest minute inside
            ("transcription", NOW - 60 * MIN, 9000.0),  # 09:00, just outside
            ("transcription", NOW + MIN, 7000.0),  # 10:01, enters a minute later
        ]
    )
    assert windows.quantiles("transcription", NOW) == (1, {0.5: 1.0, 0.95: 1.0, 0.99: 1.0})
    assert windows.quantiles("transcription", NOW + MIN)[0] == 1  # 09:01 left, 10:01 came
    assert windows.quantiles("transcription", NOW + MIN)[1][0.5] == 7.0
    assert windows.quantiles("draft_generation", NOW) == (0, {})


def test_prune_drops_minutes_that_left_and_a_read_sees_later_commits() -> None:
    windows = LatencyWindows()
    windows.apply([("end_to_end", NOW - 30 * MIN, 60_000.0)])
    assert windows.quantiles("end_to_end", NOW)[1][0.99] == 60.0
    windows.apply([("end_to_end", NOW - 30 * MIN, 120_000.0)])  # same minute, after a read
    assert windows.digest("end_to_end", NOW) == LatencyDigest.of([60_000.0, 120_000.0])
    windows.prune(NOW + 31 * MIN)
    assert windows.footprint() == (0, 0)
    windows.apply([("end_to_end", NOW, 1.0)])
    windows.clear()
    assert windows.footprint() == (0, 0)


def test_sql_bucketed_rows_restore_the_same_digest() -> None:
    values = [0.0, 0.5, 250.0, 251.0, 8_000.0, 8_000.0]
    rows: dict[int | None, list[float]] = {}
    for value in values:
        rows.setdefault(digest_index(value) if value else None, []).append(value)
    windows = LatencyWindows()
    windows.load(
        MinuteLatency(NOW, LatencyRow(None, "claims_extracted", b, len(v), sum(v), min(v), max(v)))
        for b, v in rows.items()
    )
    assert windows.digest("claims_extraction", NOW) == LatencyDigest.of(values)
    assert windows.bucketing == (GAMMA, MIN_MS)


def test_builder_add_bucket_matches_adding_the_values() -> None:
    builder = DigestBuilder()
    builder.add_bucket(None, 2, 0.0, 0.0, 0.0)
    builder.add_bucket(digest_index(10.0), 3, 30.0, 10.0, 10.0)
    assert builder.build() == LatencyDigest.of([0.0, 0.0, 10.0, 10.0, 10.0])
    assert builder.size == 1
