"""The background jobs voxmon runs: their names and default schedules, in the order a tick
runs them. Settings validate ``[schedule]`` against this table, the scheduler, the API and
the CLI run the same names; the code each runs lives in ``rollup.service``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ROLLUP_HOURLY = "rollup-hourly"
ROLLUP_DAILY = "rollup-daily"
CLEANUP_SNAPSHOTS = "cleanup-snapshots"
CLEANUP_EVENTS = "cleanup-events"


@dataclass(frozen=True, slots=True)
class JobDef:
    """One job: its name, default cron (UTC), and whether it also runs once at every start
    (the rollups' catch-up of missing and dirty windows)."""

    name: str
    cron: str
    at_start: bool = False


JOB_DEFS: tuple[JobDef, ...] = (
    JobDef(ROLLUP_HOURLY, "30 * * * *", at_start=True),
    JobDef(ROLLUP_DAILY, "30 1 * * *", at_start=True),
    JobDef(CLEANUP_SNAPSHOTS, "30 4 * * 0"),
    JobDef(CLEANUP_EVENTS, "0 5 * * 0"),
)
JOB_NAMES = tuple(job.name for job in JOB_DEFS)
DEFAULT_CRONS: Mapping[str, str] = {job.name: job.cron for job in JOB_DEFS}
