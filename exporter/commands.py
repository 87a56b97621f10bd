"""The ``voxmon rollup`` and ``voxmon cleanup`` commands: the daemon's own job code run on
the database file, through the rollup guard, and recorded like the daemon's runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from exporter import preflight
from exporter.clock import SystemClock
from exporter.settings import Settings
from exporter.storage.base import Store
from exporter.storage.errors import is_storage_error
from exporter.storage.factory import open_store
from rollup import cleanup as cleanup_jobs
from rollup import jobs
from rollup.service import retention_of, run_recorded
from rollup.windows import day_floor, hour_floor


def on_database(settings: Settings, command: Callable[[Store], int]) -> int:
    """Run ``command`` on the existing database; a database that is missing, unusable or
    fails during the run is one line and exit code 2, never a traceback."""
    location = settings.location
    path = Path(settings.db_path)
    if location.kind == "sqlite" and not path.exists():  # a typo must not create a database
        print(f"voxmon: database {path} does not exist; check --db (or VOXMON_DB_PATH)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        store = open_store(location, synchronous=settings.sqlite_synchronous)
    except Exception as exc:
        return _failed(settings, exc)
    try:
        return command(store)
    except Exception as exc:
        return _failed(settings, exc)
    finally:
        store.close()


def _failed(settings: Settings, exc: Exception) -> int:
    """One line for a storage failure, exit code 2; anything else is a bug and propagates."""
    if not is_storage_error(exc):
        raise exc
    where = settings.location
    what = preflight.describe_failure(where.target, exc) if where.kind == "sqlite" else exc
    print(f"voxmon: {what if where.kind == 'sqlite' else f'database {where.shown}: {what}'}",
          file=sys.stderr)  # fmt: skip
    return 2


def rollup(store: Store, args: argparse.Namespace) -> int:
    """Roll up the asked windows through the rollup guard; prints a line per refused range
    and exits 1 when nothing could be computed. The run is recorded like a daemon run."""
    clock = SystemClock()
    now = clock.now()
    if args.at is not None:
        at = (hour_floor if args.period == "hourly" else day_floor)(args.at)
        allowed, skipped = jobs.plan_windows(store, args.period, [at], now)
    else:
        allowed, skipped = jobs.plan_range(store, args.period, args.start, args.end, now)
    progress = _progress_bar(args.period) if len(allowed) > 1 and sys.stderr.isatty() else None

    def run() -> jobs.JobOutcome:
        write = jobs.direct_write(store)
        return jobs.run_windows(store, write, allowed, args.period, now, progress)

    outcome = run_recorded(store, f"rollup-{args.period}", now, clock, run) if allowed else None
    for skip in [*skipped, *(outcome.skipped if outcome else ())]:
        print(f"voxmon: {skip.describe()}", file=sys.stderr)
    if outcome is None or not outcome.windows:
        print(f"{args.period}: nothing rolled up", file=sys.stderr)
        return 1
    print(
        f"{args.period}: {len(outcome.windows)} window(s) {outcome.describe()}, {outcome.rows} rows"
    )
    return 0


def _progress_bar(label: str) -> jobs.Progress:
    """A bar redrawn in place with ``\r``: for a terminal only (a log file or a pipe would
    keep every redraw); the summary line on stdout says the same at the end."""

    def show(done: int, total: int) -> None:
        filled = 30 * done // total
        bar = "#" * filled + "." * (30 - filled)
        end = "\n" if done == total else ""
        print(f"\r{label} [{bar}] {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


def cleanup(store: Store, settings: Settings, dry_run: bool) -> int:
    clock = SystemClock()
    now = clock.now()
    retention = retention_of(settings)
    write = jobs.direct_write(store)
    if dry_run:
        events = cleanup_jobs.cleanup_events(store, write, now, retention, dry_run)
        snapshots = cleanup_jobs.cleanup_snapshots(store, write, now, retention, dry_run)
    else:
        events = run_recorded(
            store,
            "cleanup-events",
            now,
            clock,
            lambda: cleanup_jobs.cleanup_events(store, write, now, retention),
        )
        snapshots = run_recorded(
            store,
            "cleanup-snapshots",
            now,
            clock,
            lambda: cleanup_jobs.cleanup_snapshots(store, write, now, retention),
        )
    verb = "would delete" if dry_run else "deleted"
    counts = {**events.deleted, **{f"{k}_snapshots": v for k, v in snapshots.deleted.items()}}
    print(f"cleanup {verb}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0
