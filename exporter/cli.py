"""The ``voxmon`` command line: ``serve``, ``check-config``, ``rollup``, ``cleanup`` and
``demo``."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from exporter import daemon, demo, preflight
from exporter.app import retention_of
from exporter.clock import SystemClock
from exporter.errors import ConfigError, StartupError
from exporter.settings import Settings
from exporter.storage.sqlite import job_runs as job_rows
from exporter.storage.sqlite.database import connect, in_transaction
from exporter.timestamps import TimestampError, ms_to_datetime, parse_timestamp
from rollup import jobs
from rollup.scheduler import job_run
from rollup.windows import day_floor, hour_floor

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxmon", description=__doc__)
    parser.add_argument("--config", help="path to voxmon.toml (default: ./voxmon.toml if present)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the daemon")
    _add_overrides(serve)
    check = commands.add_parser("check-config", help="validate the configuration and exit")
    _add_overrides(check)
    rollup = commands.add_parser(
        "rollup",
        help="aggregate snapshots now (works whether or not the daemon runs)",
        description="--at T aggregates the hour (or UTC day) holding T; --from/--to every"
        " hour (day) starting in [floor(T1), T2). Times: RFC 3339 or epoch ms.",
    )
    rollup.add_argument("period", choices=("hourly", "daily"))
    when = rollup.add_mutually_exclusive_group(required=True)
    when.add_argument("--at", type=_when, help="a time inside the window to aggregate")
    when.add_argument("--from", dest="start", type=_when, help="first window (with --to)")
    rollup.add_argument("--to", dest="end", type=_when, help="end of the range (exclusive)")
    _add_overrides(rollup)
    cleanup = commands.add_parser("cleanup", help="apply retention to events and snapshots now")
    cleanup.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    _add_overrides(cleanup)
    demo.add_parser(commands)
    return parser


def _when(text: str) -> datetime:
    try:
        value: str | int = int(text) if text.lstrip("-").isdigit() else text
        return ms_to_datetime(parse_timestamp(value))
    except TimestampError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default 9473)")
    parser.add_argument("--db", dest="db_path", help="SQLite file (default ./voxmon.db)")
    parser.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING, ERROR")


def load_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        key: getattr(args, key, None) for key in ("host", "port", "db_path", "log_level")
    }
    return Settings.load(args.config, os.environ, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        print(f"voxmon: {exc.message}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo":
        return demo.command(args, settings)
    if args.command == "rollup":
        if args.at is None and (args.end is None or args.end <= args.start):
            print("voxmon: --from needs --to, and --to must be after --from", file=sys.stderr)
            return 2
        return _on_database(settings, lambda conn: _rollup(conn, args))
    if args.command == "cleanup":
        return _on_database(settings, lambda conn: _cleanup(conn, settings, args.dry_run))
    if args.command == "check-config":
        return _check_config(settings)
    try:
        daemon.serve(settings, SystemClock())
    except StartupError as exc:
        print(f"voxmon: {exc.message}", file=sys.stderr)
        return 2
    return 0


def _check_config(settings: Settings) -> int:
    """Settings (already loaded), then everything ``serve`` would refuse to start on."""
    problems = preflight.problems(settings, SystemClock())
    for problem in problems:
        print(f"voxmon: {problem}", file=sys.stderr)
    if problems:
        return 2
    print(
        f"configuration OK: listening on {settings.host}:{settings.port},"
        f" database {settings.db_path}, auth {'on' if settings.auth_enabled else 'off'}"
    )
    return 0


def _on_database(settings: Settings, command: Callable[[sqlite3.Connection], int]) -> int:
    """Run ``command`` on the existing database; a database that is missing, unusable or
    fails during the run is one line and exit code 2, never a traceback."""
    path = Path(settings.db_path)
    if not path.exists():  # a mistyped --db must not create an empty database
        print(f"voxmon: database {path} does not exist; check --db (or VOXMON_DB_PATH)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        conn = connect(path, synchronous=settings.sqlite_synchronous, create=False)
    except (sqlite3.Error, OSError) as exc:
        print(f"voxmon: {preflight.describe_failure(settings.db_path, exc)}", file=sys.stderr)
        return 2
    try:
        return command(conn)
    except (sqlite3.Error, OSError) as exc:
        print(f"voxmon: {preflight.describe_failure(settings.db_path, exc)}", file=sys.stderr)
        return 2
    finally:
        conn.close()


def _rollup(conn: sqlite3.Connection, args: argparse.Namespace) -> int:
    """Roll up the asked windows through the rollup guard; prints a line per refused range
    and exits 1 when nothing could be computed. The run is recorded like a daemon run."""
    now = SystemClock().now()
    if args.at is not None:
        at = (hour_floor if args.period == "hourly" else day_floor)(args.at)
        allowed, skipped = jobs.plan_windows(conn, args.period, [at], now)
    else:
        allowed, skipped = jobs.plan_range(conn, args.period, args.start, args.end, now)
    progress = _progress_bar(args.period) if len(allowed) > 1 else None

    def run() -> jobs.JobOutcome:
        write = jobs.direct_write(conn)
        return jobs.run_windows(conn, write, allowed, args.period, now, progress)

    outcome = _recorded(conn, f"rollup-{args.period}", now, run) if allowed else None
    for skip in [*skipped, *(outcome.skipped if outcome else ())]:
        print(f"voxmon: {skip.describe()}", file=sys.stderr)
    if outcome is None or not outcome.windows:
        print(f"{args.period}: nothing rolled up", file=sys.stderr)
        return 1
    print(
        f"{args.period}: {len(outcome.windows)} window(s) {outcome.describe()}, {outcome.rows} rows"
    )
    return 0


def _recorded(
    conn: sqlite3.Connection, name: str, now: datetime, run: Callable[[], jobs.JobOutcome]
) -> jobs.JobOutcome:
    """Run a job the way the daemon's scheduler does, and record the run in the same job
    run records (so ``GET /v1/rollups`` and the ``voxmon_rollup_*`` metrics of a running
    daemon see it). A failure is recorded, then raised."""
    clock = SystemClock()
    started = clock.monotonic()
    try:
        outcome = run()
    except Exception as exc:
        failed = job_run(name, now, jobs.JobOutcome(), f"{type(exc).__name__}: {exc}",
                         clock.monotonic() - started, "cli")  # fmt: skip
        in_transaction(conn, lambda c: job_rows.record_run(c, failed))
        raise
    done = job_run(name, now, outcome, None, clock.monotonic() - started, "cli")
    in_transaction(conn, lambda c: job_rows.record_run(c, done))
    return outcome


def _progress_bar(label: str) -> jobs.Progress:
    def show(done: int, total: int) -> None:
        filled = 30 * done // total
        bar = "#" * filled + "." * (30 - filled)
        end = "\n" if done == total else ""
        print(f"\r{label} [{bar}] {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


def _cleanup(conn: sqlite3.Connection, settings: Settings, dry_run: bool) -> int:
    now = SystemClock().now()
    retention = retention_of(settings)
    write = jobs.direct_write(conn)
    if dry_run:
        events = jobs.cleanup_events(conn, write, now, retention, dry_run)
        snapshots = jobs.cleanup_snapshots(conn, write, now, retention, dry_run)
    else:
        events = _recorded(
            conn,
            "cleanup-events",
            now,
            lambda: jobs.cleanup_events(conn, write, now, retention),
        )
        snapshots = _recorded(
            conn,
            "cleanup-snapshots",
            now,
            lambda: jobs.cleanup_snapshots(conn, write, now, retention),
        )
    verb = "would delete" if dry_run else "deleted"
    counts = {**events.deleted, **{f"{k}_snapshots": v for k, v in snapshots.deleted.items()}}
    print(f"cleanup {verb}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
