"""Strict retention cutoffs and the closed hourly/daily rollup windows, on explicit UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rollup.windows import (
    Retention,
    closed_days,
    closed_hours,
    cutoff,
    day_floor,
    hour_floor,
)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


NOW = utc(2026, 11, 28, 12, 0)
SECOND = timedelta(seconds=1)


def test_retention_defaults_are_the_design_defaults() -> None:
    assert Retention() == Retention(
        events=timedelta(hours=48), hourly=timedelta(days=7), daily=timedelta(days=90)
    )


@pytest.mark.parametrize(
    ("kind", "age", "expired"),
    [
        ("hourly", timedelta(days=7) + SECOND, True),
        ("hourly", timedelta(days=7), False),  # exactly at the cutoff: kept
        ("hourly", timedelta(days=7) - SECOND, False),
        ("daily", timedelta(days=90) + SECOND, True),
        ("daily", timedelta(days=90), False),
        ("daily", timedelta(days=90) - SECOND, False),
        ("events", timedelta(hours=48) + SECOND, True),
        ("events", timedelta(hours=48), False),
        ("events", timedelta(hours=48) - SECOND, False),
        ("events", timedelta(hours=48, microseconds=1), True),
    ],
)
def test_retention_cutoff_is_strict(kind: str, age: timedelta, expired: bool) -> None:
    keep: timedelta = getattr(Retention(), kind)
    assert (NOW - age < cutoff(NOW, keep)) is expired


@pytest.mark.parametrize(
    ("kind", "at"),
    [
        ("events", utc(2026, 11, 26, 12, 0)),
        ("hourly", utc(2026, 11, 21, 12, 0)),
        ("daily", utc(2026, 8, 30, 12, 0)),
    ],
)
def test_retention_cutoff_times(kind: str, at: datetime) -> None:
    assert cutoff(NOW, getattr(Retention(), kind)) == at


def test_retention_compares_instants_across_offsets() -> None:
    ts = datetime(2026, 11, 21, 13, 0, tzinfo=timezone(timedelta(hours=1)))  # 12:00Z
    assert (ts < cutoff(NOW, Retention().hourly)) is False
    assert (ts - SECOND < cutoff(NOW, Retention().hourly)) is True


def test_retention_rejects_naive_times() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cutoff(datetime(2026, 11, 28), Retention().events)
    with pytest.raises(ValueError, match="timezone-aware"):
        hour_floor(datetime(2026, 11, 28, 10, 30))


@pytest.mark.parametrize(
    ("when", "hour", "day"),
    [
        (utc(2026, 11, 28, 10, 0), utc(2026, 11, 28, 10), utc(2026, 11, 28)),
        (utc(2026, 11, 28, 10, 59, 59), utc(2026, 11, 28, 10), utc(2026, 11, 28)),
        (utc(2026, 12, 31, 23, 59, 59), utc(2026, 12, 31, 23), utc(2026, 12, 31)),
        (  # 00:30 at +02:00 is 22:30Z the day before
            datetime(2027, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))),
            utc(2026, 12, 31, 22),
            utc(2026, 12, 31),
        ),
    ],
)
def test_retention_hour_and_day_floor(when: datetime, hour: datetime, day: datetime) -> None:
    assert hour_floor(when) == hour
    assert day_floor(when) == day
    assert hour_floor(when).tzinfo is day_floor(when).tzinfo is UTC


@pytest.mark.parametrize(
    ("now", "since", "hours"),
    [
        (
            utc(2026, 11, 28, 12, 40),
            utc(2026, 11, 28, 9, 15),  # [09:00, 10:00) starts before since: not included
            [utc(2026, 11, 28, 10), utc(2026, 11, 28, 11)],
        ),
        (utc(2026, 11, 28, 12, 0), utc(2026, 11, 28, 11), [utc(2026, 11, 28, 11)]),
        (utc(2026, 11, 28, 11, 59, 59), utc(2026, 11, 28, 11), []),  # not closed yet
        (utc(2026, 11, 28, 12, 0), utc(2026, 11, 28, 12), []),
        (utc(2026, 11, 28, 12, 0), utc(2026, 11, 28, 14), []),  # since after now
        (
            utc(2027, 1, 1, 1, 0),
            utc(2026, 12, 31, 22, 30),
            [utc(2026, 12, 31, 23), utc(2027, 1, 1, 0)],
        ),
    ],
)
def test_retention_closed_hours(now: datetime, since: datetime, hours: list[datetime]) -> None:
    assert closed_hours(now, since) == hours


def test_retention_closed_hours_over_event_retention() -> None:
    now = utc(2026, 11, 28, 12, 40)
    hours = closed_hours(now, cutoff(now, Retention().events))
    assert (len(hours), hours[0], hours[-1]) == (47, utc(2026, 11, 26, 13), utc(2026, 11, 28, 11))


@pytest.mark.parametrize(
    ("now", "since", "days"),
    [
        (
            utc(2026, 11, 28, 12, 40),
            utc(2026, 11, 25),
            [utc(2026, 11, 25), utc(2026, 11, 26), utc(2026, 11, 27)],
        ),
        (utc(2027, 1, 1), utc(2026, 12, 30, 6), [utc(2026, 12, 31)]),  # year boundary
        (utc(2026, 12, 31, 23, 59, 59), utc(2026, 12, 31), []),  # not closed yet
        (utc(2026, 12, 1), utc(2026, 11, 30), [utc(2026, 11, 30)]),  # month boundary
        (utc(2026, 11, 28, 12), utc(2026, 11, 29), []),
    ],
)
def test_retention_closed_days(now: datetime, since: datetime, days: list[datetime]) -> None:
    assert closed_days(now, since) == days
