"""The summary planner: whole days from daily snapshots, edge hours from hourly ones, and
every hour it cannot cover stated with its reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exporter.records import Gap
from exporter.timestamps import datetime_to_ms
from rollup.summary import Coverage, hour_bounds, plan, spans

H, D = 3_600_000, 86_400_000


def ms(day: int, hour: int = 0, minute: int = 0) -> int:
    return datetime_to_ms(datetime(2026, 11, day, hour, minute, tzinfo=UTC))


def hours(start: int, end: int) -> frozenset[int]:
    return frozenset(range(start, end, H))


def coverage(
    daily: frozenset[int] = frozenset(),
    hourly: frozenset[int] = frozenset(),
    dirty_daily: frozenset[int] = frozenset(),
    dirty_hourly: frozenset[int] = frozenset(),
    history: int | None = None,
    now: int | None = None,
) -> Coverage:
    return Coverage(daily, hourly, dirty_daily, dirty_hourly, history, now or ms(28, 12))


# Rolled up from 24 Nov: hourly rows to 28 Nov 11:00, daily rows for 24..27 Nov.
ROLLED = coverage(
    daily=frozenset({ms(24), ms(25), ms(26), ms(27)}),
    hourly=hours(ms(24), ms(28, 11)),
    history=ms(24),
    now=ms(28, 12, 30),
)


@pytest.mark.parametrize(
    ("start", "end", "days", "hour_count", "gaps"),
    [
        # whole days only
        (ms(25), ms(27), [ms(25), ms(26)], 0, []),
        # edges from hours: 25 Nov 18:00..24:00, 26 Nov whole, 27 Nov 00:00..06:00
        (ms(25, 18), ms(27, 6), [ms(26)], 12, []),
        # up to now: the hour 11:00 not rolled up yet, 12:00 still open
        (ms(27), ms(28, 12, 30), [ms(27)], 11,
         [Gap(ms(28, 11), ms(28, 12), "not_rolled_up"), Gap(ms(28, 12), ms(28, 13), "open")]),
        # before history: known empty, never a gap
        (ms(20), ms(25), [ms(24)], 0, []),
        # unaligned bounds widen to whole hours
        (ms(26, 10, 15), ms(26, 11, 1), [], 2, []),
    ],
)  # fmt: skip
def test_summary_plan_days_hours_and_gaps(
    start: int, end: int, days: list[int], hour_count: int, gaps: list[Gap]
) -> None:
    found = plan(start, end, ROLLED)
    assert list(found.days) == days
    assert len(found.hours) == hour_count
    assert list(found.gaps) == gaps
    assert (found.start_ms, found.end_ms) == hour_bounds(start, end)


def test_summary_plan_without_a_daily_row_uses_the_hours() -> None:
    """Before the daily job ran for yesterday, its 24 hourly rows stand in."""
    found = plan(ms(27), ms(28), coverage(hourly=hours(ms(27), ms(28)), history=ms(27)))
    assert found.days == ()
    assert found.hours == tuple(range(ms(27), ms(28), H))
    assert found.gaps == ()


def test_summary_plan_dirty_day_prefers_its_fresh_hours() -> None:
    cov = coverage(
        daily=frozenset({ms(27)}),
        hourly=hours(ms(27), ms(28)),
        dirty_daily=frozenset({ms(27)}),
        dirty_hourly=frozenset({ms(27, 5)}),
        history=ms(27),
    )
    found = plan(ms(27), ms(28), cov)
    assert found.days == ()
    assert len(found.hours) == 24
    assert found.gaps == (Gap(ms(27, 5), ms(27, 6), "late_events"),)


def test_summary_plan_dirty_day_without_its_hours_uses_the_day_and_says_so() -> None:
    cov = coverage(
        daily=frozenset({ms(20)}), dirty_daily=frozenset({ms(20)}), history=ms(20), now=ms(28)
    )
    found = plan(ms(20), ms(21), cov)
    assert found.days == (ms(20),)
    assert found.gaps == (Gap(ms(20), ms(21), "late_events"),)


def test_summary_plan_joins_adjacent_gaps_across_days() -> None:
    found = plan(ms(26, 20), ms(27, 4), coverage(history=ms(20), now=ms(28)))
    assert found.gaps == (Gap(ms(26, 20), ms(27, 4), "not_rolled_up"),)


def test_summary_spans_group_consecutive_windows() -> None:
    assert spans((0, H, 2 * H, 5 * H, 6 * H, 9 * H), H) == [(0, 3 * H), (5 * H, 7 * H),
                                                          (9 * H, 10 * H)]  # fmt: skip
    assert spans((), D) == []


def test_summary_plan_day_with_a_late_hour_not_yet_rerolled_says_so() -> None:
    """Ingest marks only the hour dirty; the day is marked when the hourly job re-rolls it.
    Until then the day's snapshot lacks the late events and the summary must say which hour
    (it once answered the stale day with no gap)."""
    cov = coverage(
        daily=frozenset({ms(26), ms(27)}),
        hourly=hours(ms(26), ms(28)),
        dirty_hourly=frozenset({ms(27, 12)}),
        history=ms(26),
    )
    found = plan(ms(26), ms(28), cov)
    assert found.days == (ms(26), ms(27))
    assert found.gaps == (Gap(ms(27, 12), ms(27, 13), "late_events"),)
