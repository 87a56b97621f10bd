"""The one cron validator: its verdicts, and settings and the scheduler agreeing with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.cron import cron_problem
from exporter.errors import ConfigError
from exporter.settings import Settings
from rollup.schedule import CronSchedule

CASES = [
    ("30 * * * *", ""),
    ("@hourly", ""),
    ("0 5 * * sun", ""),
    ("0 0 29 2 *", ""),  # fires every leap year
    ("0 0 31 2 1", ""),  # day-of-month OR weekday: every Monday in February
    ("0 0 31 2 *", "it never fires (no such date)"),
    ("0 0 30 2 *", "it never fires (no such date)"),
    ("0 0 31 4 *", "it never fires (no such date)"),
    ("61 * * * *", "[61 * * * *] is not acceptable, out of range"),
    ("*/0 * * * *", "[*/0 * * * *] step '0' in field 0 is not acceptable"),
    ("0 0 * * * 30", "expected 5 fields (minute hour day month weekday), got 6"),
    ("* * *", "expected 5 fields (minute hour day month weekday), got 3"),
    ("", "expected 5 fields (minute hour day month weekday), got 0"),
    ("@reboot", "Exactly 5, 6 or 7 columns has to be specified for iterator expression."),
    (5, "expected a string, got int"),
]


@pytest.mark.parametrize(("expr", "problem"), CASES)
def test_cron_problem_verdicts(expr: object, problem: str) -> None:
    assert cron_problem(expr) == problem


@pytest.mark.parametrize(("expr", "problem"), CASES)
def test_cron_settings_and_schedule_agree(tmp_path: Path, expr: object, problem: str) -> None:
    """What the configuration accepts, the scheduler runs; what it refuses, the scheduler
    refuses with the same reason (one validator, not two)."""
    try:
        settings = Settings.load(None, {}, {"crons": {"rollup-daily": expr}})
    except ConfigError as exc:
        reason = f"invalid cron expression {expr!r}: {problem}"
        assert exc.problems == [f"schedule.rollup-daily: {reason}"]
        with pytest.raises(ValueError) as refused:
            CronSchedule(expr)  # type: ignore[arg-type]
        assert str(refused.value) == reason
    else:
        assert problem == ""
        assert CronSchedule(settings.crons["rollup-daily"]).expr == expr
