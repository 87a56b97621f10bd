"""Cron fire times of the default jobs on explicit UTC datetimes, and schedule validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from exporter.jobs import DEFAULT_CRONS
from rollup.schedule import CronSchedule


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_schedule_default_crons_are_the_design_defaults() -> None:
    assert dict(DEFAULT_CRONS) == {
        "rollup-hourly": "30 * * * *",
        "rollup-daily": "30 1 * * *",
        "cleanup-snapshots": "30 4 * * 0",
        "cleanup-events": "0 5 * * 0",
    }


# 2026-11-28 is a Saturday, 2026-11-29 and 2027-01-03 are Sundays.
@pytest.mark.parametrize(
    ("job", "after", "fire"),
    [
        ("rollup-hourly", utc(2026, 11, 28, 10, 0), utc(2026, 11, 28, 10, 30)),
        ("rollup-hourly", utc(2026, 11, 28, 10, 29, 59), utc(2026, 11, 28, 10, 30)),
        ("rollup-hourly", utc(2026, 11, 28, 10, 30), utc(2026, 11, 28, 11, 30)),  # strict
        ("rollup-hourly", utc(2026, 11, 30, 23, 45), utc(2026, 12, 1, 0, 30)),  # month
        ("rollup-hourly", utc(2026, 12, 31, 23, 45), utc(2027, 1, 1, 0, 30)),  # year
        ("rollup-daily", utc(2026, 11, 28, 1, 29, 59), utc(2026, 11, 28, 1, 30)),
        ("rollup-daily", utc(2026, 11, 28, 1, 30), utc(2026, 11, 29, 1, 30)),
        ("rollup-daily", utc(2026, 11, 30, 2, 0), utc(2026, 12, 1, 1, 30)),
        ("rollup-daily", utc(2026, 12, 31, 23, 45), utc(2027, 1, 1, 1, 30)),
        ("rollup-daily", utc(2028, 2, 28, 12, 0), utc(2028, 2, 29, 1, 30)),  # leap day
        ("cleanup-snapshots", utc(2026, 11, 28, 5, 0), utc(2026, 11, 29, 4, 30)),
        ("cleanup-snapshots", utc(2026, 11, 29, 4, 29), utc(2026, 11, 29, 4, 30)),
        ("cleanup-snapshots", utc(2026, 11, 29, 4, 30), utc(2026, 12, 6, 4, 30)),
        ("cleanup-snapshots", utc(2026, 12, 31, 23, 45), utc(2027, 1, 3, 4, 30)),
        ("cleanup-events", utc(2026, 11, 28, 5, 0), utc(2026, 11, 29, 5, 0)),
        ("cleanup-events", utc(2026, 11, 29, 4, 59, 59), utc(2026, 11, 29, 5, 0)),
        ("cleanup-events", utc(2026, 11, 29, 5, 0), utc(2026, 12, 6, 5, 0)),
        ("cleanup-events", utc(2026, 12, 31, 23, 45), utc(2027, 1, 3, 5, 0)),
        ("cleanup-events", utc(2027, 2, 27, 6, 0), utc(2027, 2, 28, 5, 0)),
    ],
)
def test_schedule_default_fire_times(job: str, after: datetime, fire: datetime) -> None:
    got = CronSchedule(DEFAULT_CRONS[job]).next_fire(after)
    assert got == fire
    assert got.tzinfo is UTC


def test_schedule_next_fire_is_strictly_after_a_fire_plus_a_fraction() -> None:
    hourly = CronSchedule(DEFAULT_CRONS["rollup-hourly"])
    just_after = utc(2026, 11, 28, 10, 30) + timedelta(microseconds=1)
    assert hourly.next_fire(just_after) == utc(2026, 11, 28, 11, 30)


@pytest.mark.parametrize(
    ("job", "at", "fire"),
    [
        ("rollup-hourly", utc(2026, 11, 28, 10, 30), utc(2026, 11, 28, 10, 30)),  # inclusive
        ("rollup-hourly", utc(2026, 11, 28, 10, 29, 59), utc(2026, 11, 28, 9, 30)),
        ("rollup-hourly", utc(2027, 1, 1, 0, 15), utc(2026, 12, 31, 23, 30)),
        ("rollup-daily", utc(2027, 1, 1, 1, 0), utc(2026, 12, 31, 1, 30)),
        ("cleanup-snapshots", utc(2026, 11, 28, 23, 0), utc(2026, 11, 22, 4, 30)),
        ("cleanup-events", utc(2026, 11, 29, 5, 0), utc(2026, 11, 29, 5, 0)),
        ("cleanup-events", utc(2027, 1, 2, 12, 0), utc(2026, 12, 27, 5, 0)),
    ],
)
def test_schedule_previous_fire_at_or_before(job: str, at: datetime, fire: datetime) -> None:
    assert CronSchedule(DEFAULT_CRONS[job]).previous_fire(at) == fire


def test_schedule_previous_fire_with_a_fraction_past_a_fire() -> None:
    hourly = CronSchedule(DEFAULT_CRONS["rollup-hourly"])
    at = utc(2026, 11, 28, 10, 30) + timedelta(microseconds=500)
    assert hourly.previous_fire(at) == utc(2026, 11, 28, 10, 30)


def test_schedule_converts_offsets_to_utc() -> None:
    plus_two = datetime(2026, 11, 28, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    hourly = CronSchedule("30 * * * *")
    assert hourly.next_fire(plus_two) == utc(2026, 11, 28, 10, 30)
    assert hourly.previous_fire(plus_two) == utc(2026, 11, 28, 9, 30)
    assert CronSchedule("30 1 * * *").next_fire(plus_two) == utc(2026, 11, 29, 1, 30)


def test_schedule_rejects_naive_times() -> None:
    hourly = CronSchedule("30 * * * *")
    with pytest.raises(ValueError, match="timezone-aware"):
        hourly.next_fire(datetime(2026, 11, 28))
    with pytest.raises(ValueError, match="timezone-aware"):
        hourly.previous_fire(datetime(2026, 11, 28))


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("61 * * * *", "out of range"),
        ("30 25 * * *", "out of range"),
        ("*/0 * * * *", "step"),
        ("* * *", "expected 5 fields"),
        ("", "expected 5 fields"),
        ("every hour", "expected 5 fields"),
        ("0 0 * * * 30", "expected 5 fields"),  # croniter would read a seconds field
        ("0 0 31 4 *", "never fires"),  # 31 April
    ],
)
def test_schedule_rejects_bad_expressions(expr: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"invalid cron expression '.*': .*{reason}"):
        CronSchedule(expr)


@pytest.mark.parametrize(
    ("expr", "after", "fire"),
    [
        ("@hourly", utc(2026, 11, 28, 10, 5), utc(2026, 11, 28, 11, 0)),
        ("0 5 * * sun", utc(2026, 11, 28, 5, 0), utc(2026, 11, 29, 5, 0)),
        ("0 0 29 2 *", utc(2026, 3, 1), utc(2028, 2, 29)),
    ],
)
def test_schedule_accepts_aliases_names_and_rare_dates(
    expr: str, after: datetime, fire: datetime
) -> None:
    assert CronSchedule(expr).next_fire(after) == fire


def test_schedule_is_a_value() -> None:
    assert CronSchedule("30 * * * *") == CronSchedule("30 * * * *")
    assert CronSchedule("30 * * * *") != CronSchedule("0 * * * *")
    assert repr(CronSchedule("30 1 * * *")) == "CronSchedule('30 1 * * *')"


@pytest.mark.parametrize(
    ("start", "end", "period", "expected"),
    [
        (utc(2026, 11, 28, 11, 30), utc(2026, 11, 28, 14, 0), "hourly", [11, 12, 13]),
        (utc(2026, 11, 28, 11, 30), utc(2026, 11, 28, 12, 10), "hourly", [11, 12]),
        (utc(2026, 11, 28, 11, 0), utc(2026, 11, 28, 11, 0), "hourly", []),
        (utc(2026, 11, 26, 6, 0), utc(2026, 11, 28, 0, 0), "daily", [26, 27]),
    ],
)
def test_retention_windows_between(
    start: datetime, end: datetime, period: str, expected: list[int]
) -> None:
    from rollup.windows import windows_between

    got = windows_between(start, end, period)
    assert [w.hour if period == "hourly" else w.day for w in got] == expected
