"""The ``voxmon`` command line's arguments: one parser per subcommand holding only the
options it uses. Global options (``--config``, ``--db``, the log options) are accepted
before or after the subcommand."""

from __future__ import annotations

import argparse
from datetime import datetime
from importlib import metadata
from typing import Any

from exporter import demo
from exporter.settings import LOG_FORMATS, LOG_LEVELS, Settings
from exporter.timestamps import TimestampError, epoch_or_text, ms_to_datetime, parse_timestamp

DESCRIPTION = (
    "voxmon: a monitoring daemon for a voice-note pipeline. Settings come from ./voxmon.toml"
    " (or --config), then VOXMON_* environment variables, then these options."
)
DEFAULTS = Settings()
OVERRIDES = (
    "host", "port", "db_path", "database_url", "log_level", "log_format", "access_log",
    "instance_id",
)  # fmt: skip
"""Options that override a setting of the same name."""


def version() -> str:
    try:
        return metadata.version("voxmon")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="voxmon", description=DESCRIPTION)
    top.add_argument("--version", action="version", version=f"voxmon {version()}")
    _add_global(top, argparse.SUPPRESS)
    subs = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = subs.add_parser("serve", help="run the daemon", description="Run the daemon.")
    _add_listen(serve, "listen address", "listen port")
    serve.add_argument(
        "--instance-id",
        metavar="ID",
        help="this replica's name on a shared PostgreSQL database (setting instance_id;"
        " default: <hostname>:<port>)",
    )
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log one line per HTTP request (setting access_log; default: off)",
    )
    check = subs.add_parser(
        "check-config",
        help="validate the configuration and exit",
        description="Check the settings and everything serve would refuse to start on.",
    )
    _add_listen(check, "listen address to check", "listen port to check")
    _add_rollup(subs)
    cleanup = subs.add_parser(
        "cleanup",
        help="apply retention to events and snapshots now",
        description="Delete what retention says is too old, now, on the database file.",
    )
    cleanup.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    demo.add_parser(subs)
    for sub in subs.choices.values():
        _add_global(sub, argparse.SUPPRESS)
    top.set_defaults(**dict.fromkeys(("config", *OVERRIDES)))
    return top


def _add_global(parser: argparse.ArgumentParser, default: Any) -> None:
    """Global options. ``default=SUPPRESS`` everywhere, so an option given before the
    subcommand is not reset by the subcommand's parser (the top parser sets None)."""
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--config",
        metavar="PATH",
        default=default,
        help="path to voxmon.toml (default: ./voxmon.toml if present)",
    )
    group.add_argument(
        "--db",
        dest="db_path",
        metavar="PATH",
        default=default,
        help=f"SQLite database file (setting db_path; default: {DEFAULTS.db_path})",
    )
    group.add_argument(
        "--database-url",
        dest="database_url",
        metavar="URL",
        default=default,
        help="a path or sqlite:///path (SQLite) or postgresql://user@host/db (PostgreSQL);"
        " setting database_url; default: empty, the SQLite file --db",
    )
    group.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=default,
        help=f"{', '.join(LOG_LEVELS)} (setting log_level; default: {DEFAULTS.log_level})",
    )
    group.add_argument(
        "--log-format",
        metavar="FORMAT",
        default=default,
        help=f"{' or '.join(LOG_FORMATS)}: one JSON object per line"
        f" (setting log_format; default: {DEFAULTS.log_format})",
    )


def _add_listen(parser: argparse.ArgumentParser, host: str, port: str) -> None:
    parser.add_argument("--host", help=f"{host} (setting host; default: {DEFAULTS.host})")
    parser.add_argument("--port", type=int, help=f"{port} (setting port; default: {DEFAULTS.port})")


def _add_rollup(subs: Any) -> None:
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


def _when(text: str) -> datetime:
    try:
        return ms_to_datetime(parse_timestamp(epoch_or_text(text)))
    except TimestampError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
