"""Cron schedules on aware UTC datetimes (croniter); pure, no clock reads."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from exporter.cron import cron_problem


class CronSchedule:
    """A five-field cron expression (minute hour day-of-month month day-of-week), or a
    croniter alias such as ``@hourly``, evaluated in UTC at minute resolution."""

    __slots__ = ("expr",)

    def __init__(self, expr: str) -> None:
        problem = cron_problem(expr)
        if problem:
            raise ValueError(f"invalid cron expression {expr!r}: {problem}")
        self.expr = expr

    def next_fire(self, after: datetime) -> datetime:
        """First fire time strictly after ``after`` (aware, any offset), as aware UTC."""
        fire: datetime = croniter(self.expr, _utc(after)).get_next(datetime)
        return fire.astimezone(UTC)

    def previous_fire(self, at_or_before: datetime) -> datetime:
        """Latest fire time at or before ``at_or_before`` (aware, any offset), as aware UTC;
        a fire time passed in is returned unchanged."""
        moment = _utc(at_or_before)
        fire: datetime = croniter(self.expr, moment).get_prev(datetime)
        following = self.next_fire(fire)  # == moment exactly when moment is a fire time
        return following if following <= moment else fire.astimezone(UTC)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CronSchedule) and other.expr == self.expr

    def __hash__(self) -> int:
        return hash(self.expr)

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r})"


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"schedule times must be timezone-aware, got naive {when.isoformat()}")
    return when.astimezone(UTC)
