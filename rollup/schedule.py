"""Cron schedules on aware UTC datetimes (croniter); pure, no clock reads."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from exporter.settings import DEFAULT_CRONS

__all__ = ["DEFAULT_CRONS", "CronSchedule"]


class CronSchedule:
    """A five-field cron expression evaluated in UTC."""

    def __init__(self, expr: str) -> None:
        if not croniter.is_valid(expr):
            raise ValueError(f"invalid cron expression {expr!r}")
        self.expr = expr

    def next_fire(self, after: datetime) -> datetime:
        """First fire time strictly after ``after`` (aware), in UTC."""
        fire: datetime = croniter(self.expr, _utc(after)).get_next(datetime)
        return fire.astimezone(UTC)

    def previous_fire(self, at_or_before: datetime) -> datetime:
        """Latest fire time at or before ``at_or_before`` (aware), in UTC."""
        moment = _utc(at_or_before)
        if croniter.match(self.expr, moment) and moment.second == moment.microsecond == 0:
            return moment
        fire: datetime = croniter(self.expr, moment).get_prev(datetime)
        return fire.astimezone(UTC)

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r})"


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("schedule times must be timezone-aware")
    return when.astimezone(UTC)
