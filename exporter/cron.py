"""The one cron validator: what ``[schedule]`` accepts is exactly what the scheduler can run
(five fields or an ``@`` alias, and a time at which it fires). Pure: no clock, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import CroniterBadDateError, CroniterError, croniter

FIELDS = 5
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)
"""A fixed start for the never-fires check (not the clock: validation stays pure)."""


def cron_problem(expr: object) -> str:
    """Why ``expr`` is not a usable schedule, or '' when it is. croniter alone would also
    accept six- and seven-field forms (seconds, years) and dates that never come, such as
    ``0 0 31 2 *`` (31 February)."""
    if not isinstance(expr, str):
        return f"expected a string, got {type(expr).__name__}"
    fields = expr.split()
    if not expr.strip().startswith("@") and len(fields) != FIELDS:
        return f"expected {FIELDS} fields (minute hour day month weekday), got {len(fields)}"
    try:
        croniter(expr, _PROBE).get_next(datetime)
    except CroniterBadDateError:
        return "it never fires (no such date)"
    except (CroniterError, ValueError) as exc:
        return str(exc)
    return ""
