"""Sliding 60-minute windows at minute resolution: bounds, sliding, scopes, pruning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.catalog import WINDOW_COUNTERS
from exporter.live.windows import PLATFORM, MinuteWindows, WindowBounds, window_bounds
from exporter.timestamps import datetime_to_ms

MINUTE = 60_000


def _ms(hour: int, minute: int, second: int = 0, micro: int = 0, day: int = 28) -> int:
    return datetime_to_ms(datetime(2026, 11, day, hour, minute, second, micro, tzinfo=UTC))


@pytest.mark.parametrize(
    ("now", "start", "end"),
    [
        (
            datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC),
            datetime(2026, 11, 28, 9, 1, tzinfo=UTC),
            datetime(2026, 11, 28, 10, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 28, 10, 0, 30, 500_000, tzinfo=UTC),
            datetime(2026, 11, 28, 9, 1, tzinfo=UTC),
            datetime(2026, 11, 28, 10, 1, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 28, 10, 59, 59, 999_000, tzinfo=UTC),
            datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
            datetime(2026, 11, 28, 11, 0, tzinfo=UTC),
        ),
        (
            datetime(2026, 11, 29, 0, 30, 0, tzinfo=UTC),
            datetime(2026, 11, 28, 23, 31, tzinfo=UTC),
            datetime(2026, 11, 29, 0, 31, tzinfo=UTC),
        ),
        (
            datetime(1970, 1, 1, 0, 0, 0, tzinfo=UTC),
            datetime(1969, 12, 31, 23, 1, tzinfo=UTC),
            datetime(1970, 1, 1, 0, 1, tzinfo=UTC),
        ),
    ],
)
def test_window_bounds_on_explicit_times(now: datetime, start: datetime, end: datetime) -> None:
    bounds = window_bounds(datetime_to_ms(now))
    assert bounds == WindowBounds(datetime_to_ms(start), datetime_to_ms(end))
    assert bounds.end_ms - bounds.start_ms == 60 * MINUTE


@pytest.mark.parametrize(
    ("age", "inside"),
    [
        (timedelta(0), True),
        (timedelta(minutes=30), True),
        (timedelta(minutes=59), True),
        # Minute resolution: at 10:00:00 an event from 09:00:01 is in the 09:00 bucket, out.
        (timedelta(minutes=59, seconds=1), False),
        (timedelta(minutes=60), False),
        (timedelta(minutes=61), False),
        (timedelta(hours=3), False),
        (-timedelta(seconds=59), True),
        (-timedelta(minutes=1), False),
    ],
)
def test_minute_windows_event_age_inside_or_outside(age: timedelta, inside: bool) -> None:
    now = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
    windows = MinuteWindows()
    windows.add(PLATFORM, _minute(datetime_to_ms(now - age)), "artifacts_received", 1.0)
    totals = windows.totals(PLATFORM, datetime_to_ms(now))
    assert totals["artifacts_received"] == (1.0 if inside else 0.0)


def test_minute_windows_61_minutes_old_out_59_in_mid_minute() -> None:
    now_ms = _ms(10, 0, 30)
    windows = MinuteWindows()
    windows.add(PLATFORM, _minute(now_ms - 61 * MINUTE), "artifacts_failed", 1.0)
    windows.add(PLATFORM, _minute(now_ms - 59 * MINUTE), "artifacts_failed", 10.0)
    assert windows.totals(PLATFORM, now_ms)["artifacts_failed"] == 10.0


def test_minute_windows_totals_has_every_counter_zero_for_unknown_scope() -> None:
    assert MinuteWindows().totals("org-nobody", _ms(10, 0)) == {
        "artifacts_received": 0.0,
        "artifacts_completed": 0.0,
        "artifacts_failed": 0.0,
        "transcriptions_completed": 0.0,
        "claims_extracted": 0.0,
        "entity_resolutions_completed": 0.0,
        "drafts_generated": 0.0,
        "stage_failures": 0.0,
        "ai_cost_usd": 0.0,
    }


# (minutes after 10:00, expected artifacts_received) for buckets 09:58 = 1, 10:00 = 2,
# 10:03 = 4 and one bucket at 09:00 that is already out at 10:00.
SLIDE: list[int] = [3] * 3 + [7] * 55 + [6] * 2 + [4] * 3 + [0] * 3


def test_minute_windows_totals_slide_minute_by_minute() -> None:
    assert len(SLIDE) == 66
    windows = MinuteWindows()
    windows.add(PLATFORM, _ms(9, 0), "artifacts_received", 100.0)
    windows.add(PLATFORM, _ms(9, 58), "artifacts_received", 1.0)
    windows.add(PLATFORM, _ms(10, 0), "artifacts_received", 2.0)
    windows.add(PLATFORM, _ms(10, 3), "artifacts_received", 4.0)
    seen = [
        windows.totals(PLATFORM, _ms(10, 0) + step * MINUTE)["artifacts_received"]
        for step in range(66)
    ]
    assert seen == SLIDE


@pytest.mark.parametrize(
    ("now", "received", "cost"),
    [
        ((10, 0, 0), 3.0, 0.5),
        ((10, 0, 59), 3.0, 0.5),
        ((10, 1, 0), 3.0, 0.75),
        ((10, 58, 59), 3.0, 0.75),
        ((10, 59, 0), 2.0, 0.25),
        ((11, 0, 0), 0.0, 0.25),
        ((11, 1, 0), 0.0, 0.0),
    ],
)
def test_minute_windows_totals_sum_counters_and_cost(
    now: tuple[int, int, int], received: float, cost: float
) -> None:
    windows = MinuteWindows()
    windows.apply(
        {
            (PLATFORM, _ms(9, 59), "artifacts_received"): 1.0,
            (PLATFORM, _ms(9, 59), "ai_cost_usd"): 0.5,
            (PLATFORM, _ms(10, 0), "artifacts_received"): 2.0,
            (PLATFORM, _ms(10, 1), "ai_cost_usd"): 0.25,
        }
    )
    totals = windows.totals(PLATFORM, _ms(*now))
    assert (totals["artifacts_received"], totals["ai_cost_usd"]) == (received, cost)


def test_minute_windows_apply_adds_to_existing_buckets() -> None:
    windows = MinuteWindows()
    windows.add("org-a", _ms(10, 0), "stage_failures", 1.0)
    windows.apply({("org-a", _ms(10, 0), "stage_failures"): 2.0})
    windows.apply({("org-a", _ms(10, 0), "stage_failures"): 3.0})
    assert windows.totals("org-a", _ms(10, 0))["stage_failures"] == 6.0


def test_minute_windows_scopes_are_separate() -> None:
    windows = MinuteWindows()
    windows.add(PLATFORM, _ms(10, 0), "drafts_generated", 3.0)
    windows.add("org-a", _ms(10, 0), "drafts_generated", 2.0)
    windows.add("org-b", _ms(10, 0), "drafts_generated", 1.0)
    now = _ms(10, 0, 1)
    assert [windows.totals(s, now)["drafts_generated"] for s in ("", "org-a", "org-b")] == [
        3.0,
        2.0,
        1.0,
    ]
    assert sorted(windows.scopes()) == ["", "org-a", "org-b"]


def test_minute_windows_future_bucket_waits_to_enter() -> None:
    windows = MinuteWindows()
    windows.add(PLATFORM, _ms(10, 4), "claims_extracted", 1.0)
    assert windows.totals(PLATFORM, _ms(10, 3, 59))["claims_extracted"] == 0.0
    assert windows.totals(PLATFORM, _ms(10, 4))["claims_extracted"] == 1.0


def test_minute_windows_prune_drops_old_buckets_and_empty_org_scopes() -> None:
    windows = MinuteWindows()
    windows.add(PLATFORM, _ms(9, 0), "artifacts_received", 1.0)
    windows.add(PLATFORM, _ms(9, 30), "artifacts_received", 2.0)
    windows.add("org-old", _ms(9, 0), "artifacts_received", 1.0)
    windows.add("org-new", _ms(9, 30), "artifacts_received", 2.0)
    windows.prune(_ms(10, 0))
    # Nothing lies before 09:01 at 10:00 except the 09:00 buckets.
    assert sorted(windows.scopes()) == ["", "org-new"]
    assert windows.totals(PLATFORM, _ms(10, 0))["artifacts_received"] == 2.0
    # Read at 09:30 the window would still hold 09:00: only the pruned bucket is missing.
    assert windows.totals(PLATFORM, _ms(9, 30))["artifacts_received"] == 2.0


def test_minute_windows_prune_keeps_empty_platform_scope() -> None:
    windows = MinuteWindows()
    windows.add(PLATFORM, _ms(9, 0), "artifacts_received", 1.0)
    windows.add("org-a", _ms(9, 0), "artifacts_received", 1.0)
    windows.prune(_ms(12, 0))
    assert list(windows.scopes()) == [""]
    assert windows.totals(PLATFORM, _ms(9, 0))["artifacts_received"] == 0.0


def test_minute_windows_prune_does_not_change_totals() -> None:
    windows = MinuteWindows()
    for minute in range(0, 120, 7):
        windows.add("org-a", _ms(9, 0) + minute * MINUTE, "artifacts_completed", 1.0)
    before = [windows.totals("org-a", _ms(10, 0) + s * MINUTE) for s in range(0, 60, 5)]
    after = []
    for step in range(0, 60, 5):
        windows.prune(_ms(10, 0) + step * MINUTE)
        after.append(windows.totals("org-a", _ms(10, 0) + step * MINUTE))
    assert after == before
    assert [t["artifacts_completed"] for t in after] == [
        8.0, 9.0, 9.0, 8.0, 9.0, 9.0, 8.0, 8.0, 9.0, 9.0, 8.0, 9.0,
    ]  # fmt: skip


def test_minute_windows_prune_within_same_minute_is_a_no_op() -> None:
    windows = MinuteWindows()
    windows.add("org-a", _ms(9, 30), "artifacts_received", 1.0)
    windows.prune(_ms(10, 0))
    windows.prune(_ms(10, 0, 59))
    windows.prune(_ms(9, 0))  # an earlier clock never resurrects or drops anything
    assert windows.totals("org-a", _ms(10, 0, 59))["artifacts_received"] == 1.0
    windows.prune(_ms(10, 31))
    assert list(windows.scopes()) == []


@settings(max_examples=150, deadline=None, database=None)
@given(
    adds=st.lists(
        st.tuples(
            st.sampled_from(["", "org-a"]),
            st.integers(-180, 180),
            st.integers(1, 9),
            st.sampled_from(WINDOW_COUNTERS),
        ),
        max_size=40,
    ),
    reads=st.lists(st.integers(-120, 240), min_size=1, max_size=8),
)
def test_minute_windows_totals_match_brute_force(
    adds: list[tuple[str, int, int, str]], reads: list[int]
) -> None:
    """Totals of every counter (with prune called at every read, reads in time order) equal
    a brute-force sum over the minutes ``m`` with ``floor(now) - 59 min <= m <= floor(now)``."""
    windows = MinuteWindows()
    base = _ms(10, 0)
    for scope, minute, value, counter in adds:
        windows.add(scope, base + minute * MINUTE, counter, float(value))
    for read_s in sorted(reads):
        now = base + read_s * 30_000 + 7
        current = (now - base) // MINUTE
        windows.prune(now)
        for scope in ("", "org-a"):
            expected = {name: 0.0 for name in WINDOW_COUNTERS}
            for s, m, v, counter in adds:
                if s == scope and current - 59 <= m <= current:
                    expected[counter] += v
            assert windows.totals(scope, now) == expected


def _minute(ts_ms: int) -> int:
    return ts_ms - ts_ms % 60_000
