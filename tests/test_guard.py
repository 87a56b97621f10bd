"""The rollup guard on explicit UTC times: which windows may be (re)computed, and why not."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from exporter.records import Horizons
from exporter.timestamps import datetime_to_ms
from rollup import guard
from rollup.windows import windows_between


def utc(day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def ms(when: datetime) -> int:
    return datetime_to_ms(when)


NOW = utc(28, 12, 40)
HORIZONS = Horizons(
    history_start_ms=ms(utc(20, 7)),
    events_from_ms=ms(utc(26, 12)),
    hourly_from_ms=ms(utc(21)),
    daily_from_ms=ms(utc(1)),
)


@pytest.mark.parametrize(
    ("period", "start", "reason"),
    [
        ("hourly", utc(28, 11), None),  # closed at 12:00
        ("hourly", utc(28, 12), "open"),  # closes at 13:00
        ("hourly", utc(28, 13), "future"),
        ("hourly", utc(26, 12), None),  # the first hour with complete events
        ("hourly", utc(26, 11), "events_pruned"),
        ("hourly", utc(20, 6), "before_history"),  # ends exactly at the history start
        ("daily", utc(27), None),
        ("daily", utc(28), "open"),
        ("daily", utc(21), None),  # hourly rows complete from the 21st
        ("daily", utc(20), "hourly_pruned"),
        ("daily", utc(19), "before_history"),
        ("hourly", datetime(9999, 12, 31, 23, tzinfo=UTC), "future"),  # no end to compute
        ("daily", datetime(9999, 12, 31, tzinfo=UTC), "future"),
    ],
)
def test_guard_check(period: str, start: datetime, reason: str | None) -> None:
    if reason is None:
        guard.check(period, start, NOW, HORIZONS)
        return
    with pytest.raises(guard.Refused) as refused:
        guard.check(period, start, NOW, HORIZONS)
    assert refused.value.reason == reason


def test_guard_refuses_everything_before_the_first_event() -> None:
    with pytest.raises(guard.Refused) as refused:
        guard.check("hourly", utc(28, 10), NOW, Horizons())
    assert (refused.value.reason, refused.value.message) == (
        "no_history", "no event has been accepted yet",
    )  # fmt: skip


def test_guard_daily_rows_pruned_by_daily_retention_are_not_recreated() -> None:
    horizons = Horizons(history_start_ms=ms(utc(1)), daily_from_ms=ms(utc(10, 3)))
    with pytest.raises(guard.Refused) as refused:
        guard.check("daily", utc(10), NOW, horizons)
    assert refused.value.reason == "daily_pruned"
    guard.check("daily", utc(11), NOW, horizons)
    guard.check("hourly", utc(10, 1), NOW, horizons)  # hours are not daily rows


def test_guard_coalesces_consecutive_refusals_by_reason() -> None:
    hours = [utc(26, 9) + timedelta(hours=k) for k in range(5)]
    refused = [
        (hours[0], guard.Refused("events_pruned", "pruned")),
        (hours[1], guard.Refused("events_pruned", "pruned")),
        (hours[2], guard.Refused("open", "open")),
        (hours[4], guard.Refused("open", "open")),  # not consecutive with hours[2]
    ]
    skips = guard.coalesce("hourly", refused)
    assert [(s.first, s.last, s.count, s.reason) for s in skips] == [
        (hours[0], hours[1], 2, "events_pruned"),
        (hours[2], hours[2], 1, "open"),
        (hours[4], hours[4], 1, "open"),
    ]
    assert skips[0].describe() == (
        "skipped hourly 2026-11-26T09:00:00.000Z..2026-11-26T10:00:00.000Z (2 windows): pruned"
    )
    assert skips[1].to_json() == {
        "period": "hourly", "first": "2026-11-26T11:00:00.000Z",
        "last": "2026-11-26T11:00:00.000Z", "windows": 1, "reason": "open", "message": "open",
    }  # fmt: skip


@pytest.mark.parametrize(
    "horizons",
    [HORIZONS, Horizons(), Horizons(history_start_ms=ms(utc(28, 13)))],  # a first event 5 min ahead
    ids=["history", "no_history", "history_in_the_next_hour"],
)
@pytest.mark.parametrize("period", ["hourly", "daily"])
def test_guard_plan_range_matches_checking_every_window(period: str, horizons: Horizons) -> None:
    """Random ranges around the history start and now: the bulk plan says exactly what
    checking each window one by one says."""
    rng = random.Random(9)
    for _ in range(300):
        start = utc(1) + timedelta(minutes=rng.randrange(60 * 24 * 40))
        end = start + timedelta(minutes=rng.randrange(1, 60 * 24 * 20))
        expected = guard.split(period, windows_between(start, end, period), NOW, horizons)
        assert guard.plan_range(period, start, end, NOW, horizons) == expected


def test_guard_plan_range_from_year_1_to_9999_refuses_in_three_ranges() -> None:
    """87 million hours are planned without listing them (the CLI listed every hour, for
    minutes and gigabytes, before saying that none could be rolled up)."""
    start, end = datetime(1, 1, 1, tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    allowed, skipped = guard.plan_range("hourly", start, end, NOW, HORIZONS)
    assert [(s.reason, s.first, s.last) for s in skipped[:1] + skipped[-1:]] == [
        ("before_history", start, utc(20, 6)),
        ("future", utc(28, 13), datetime(9999, 12, 31, 23, tzinfo=UTC)),
    ]
    assert skipped[-2].reason == "open"
    assert len(allowed) + sum(s.count for s in skipped) == (end - start) // timedelta(hours=1) + 1
