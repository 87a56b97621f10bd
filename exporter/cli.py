"""The ``voxmon`` command line: ``serve``, ``check-config``, ``rollup``, ``cleanup`` and
``demo``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import version
from typing import Any

from exporter import commands, daemon, demo, preflight
from exporter.clock import SystemClock
from exporter.errors import ConfigError, StartupError
from exporter.settings import Settings
from exporter.timestamps import TimestampError, ms_to_datetime, parse_timestamp

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxmon", description=__doc__)
    parser.add_argument("--config", help="path to voxmon.toml (default: ./voxmon.toml if present)")
    parser.add_argument("--version", action="version", version=f"voxmon {version('voxmon')}")
    subs = parser.add_subparsers(dest="command", required=True)
    serve = subs.add_parser("serve", help="run the daemon")
    _add_overrides(serve)
    check = subs.add_parser("check-config", help="validate the configuration and exit")
    _add_overrides(check)
    rollup = subs.add_parser(
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
    cleanup = subs.add_parser("cleanup", help="apply retention to events and snapshots now")
    cleanup.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    _add_overrides(cleanup)
    demo.add_parser(subs)
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
        return commands.on_database(settings, lambda s: commands.rollup(s, args))
    if args.command == "cleanup":
        dry_run = args.dry_run
        return commands.on_database(settings, lambda s: commands.cleanup(s, settings, dry_run))
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


if __name__ == "__main__":
    sys.exit(main())
