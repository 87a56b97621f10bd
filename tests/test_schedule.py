"""Cron fire times of the default jobs, and the retention/window helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rollup.retention import Retention, closed_days, closed_hours, cutoff, is_expired
from rollup.schedule import DEFAULT_CRONS, CronSchedule


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("job", "after", "fire"),
    [
        ("rollup-hourly", utc(2026, 11, 28, 10, 0), utc(2026, 11, 28, 10, 30)),
        ("rollup-hourly", utc(2026, 11, 28, 10, 30), utc(2026, 11, 28, 11, 30)),
        ("rollup-hourly", utc(2026, 12, 31, 23, 45), utc(2027, 1, 1, 0, 30)),
        ("rollup-daily", utc(2026, 11, 28, 1, 29, 59), utc(2026, 11, 28, 1, 30)),
        ("rollup-daily", utc(2026, 11, 30, 2, 0), utc(2026, 12, 1, 1, 30)),
        ("rollup-daily", utc(2026, 12, 31, 12, 0), utc(2027, 1, 1, 1, 30)),
        ("cleanup-snapshots", utc(2026, 11, 28, 5, 0), utc(2026, 11, 29, 4, 30)),  # Sat -> Sun
        ("cleanup-snapshots", utc(2026, 11, 29, 4, 30), utc(2026, 12, 6, 4, 30)),
        ("cleanup-snapshots", utc(2026, 12, 28, 0, 0), utc(2027, 1, 3, 4, 30)),
        ("cleanup-events", utc(2026, 11, 28, 5, 0), utc(2026, 11, 29, 5, 0)),
        ("cleanup-events", utc(2026, 11, 29, 5, 0), utc(2026, 12, 6, 5, 0)),
        ("cleanup-events", utc(2027, 2, 27, 6, 0), utc(2027, 2, 28, 5, 0)),
    ],
)
def test_schedule_default_fire_times(job: str, after: datetime, fire: datetime) -> None:
    assert CronSchedule(DEFAULT_CRONS[job]).next_fire(after) == fire


def test_schedule_previous_fire_includes_an_exact_fire_time() -> None:
    hourly = CronSchedule("30 * * * *")
    assert hourly.previous_fire(utc(2026, 11, 28, 10, 30)) == utc(2026, 11, 28, 10, 30)
    assert hourly.previous_fire(utc(2026, 11, 28, 10, 29)) == utc(2026, 11, 28, 9, 30)


def test_schedule_converts_offsets_to_utc() -> None:
    plus_two = datetime(2026, 11, 28, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert CronSchedule("30 * * * *").next_fire(plus_two) == utc(2026, 11, 28, 10, 30)


def test_schedule_rejects_naive_times_and_bad_expressions() -> None:
    with pytest.raises(ValueError, match="aware"):
        CronSchedule("30 * * * *").next_fire(datetime(2026, 11, 28))
    with pytest.raises(ValueError, match="invalid cron"):
        CronSchedule("61 * * * *")


NOW = utc(2026, 11, 28, 12, 0)


@pytest.mark.parametrize(
    ("keep", "age", "expired"),
    [
        (Retention().hourly, timedelta(days=7, seconds=1), True),
        (Retention().hourly, timedelta(days=7), False),
        (Retention().hourly, timedelta(days=7, seconds=-1), False),
        (Retention().daily, timedelta(days=90, seconds=1), True),
        (Retention().daily, timedelta(days=90, seconds=-1), False),
        (Retention().events, timedelta(hours=48, seconds=1), True),
        (Retention().events, timedelta(hours=48, seconds=-1), False),
    ],
)
def test_retention_cutoff_is_strict(keep: timedelta, age: timedelta, expired: bool) -> None:
    assert is_expired(NOW - age, NOW, keep) is expired
    assert cutoff(NOW, keep) == NOW - keep


def test_retention_closed_hours_and_days() -> None:
    now = utc(2026, 11, 28, 12, 40)
    assert closed_hours(now, utc(2026, 11, 28, 9, 15)) == [
        utc(2026, 11, 28, 10), utc(2026, 11, 28, 11),
    ]  # fmt: skip
    assert closed_hours(utc(2026, 11, 28, 12, 0), utc(2026, 11, 28, 11)) == [utc(2026, 11, 28, 11)]
    assert closed_days(now, utc(2026, 11, 25, 0, 0)) == [
        utc(2026, 11, 25), utc(2026, 11, 26), utc(2026, 11, 27),
    ]  # fmt: skip
    assert closed_days(utc(2027, 1, 1, 0, 0), utc(2026, 12, 30, 6)) == [utc(2026, 12, 31)]
