"""The voxmon command line: serve, check-config, rollup, cleanup and demo. Loads the
settings, configures logging once, and runs the command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from exporter import commands, daemon, demo, logs, preflight
from exporter.cli_parser import OVERRIDES, parser
from exporter.clock import SystemClock
from exporter.errors import ConfigError, StartupError
from exporter.settings import Settings, environment_variables, unknown_environment

log = logging.getLogger(__name__)


def load_settings(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``--config``, the environment (``os.environ`` by default) and the
    options that override a setting."""
    overrides: dict[str, Any] = {key: getattr(args, key, None) for key in OVERRIDES}
    return Settings.load(args.config, os.environ if environ is None else environ, overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        print(f"voxmon: {exc.message}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format, settings.access_log)
    warn_unknown_environment(os.environ)
    try:
        return _run(args, settings)
    except Exception as exc:  # a bug: logged in the chosen format (one JSON line), exit 1
        name = type(exc).__name__
        log.critical("voxmon %s crashed: %s: %s", args.command, name, exc, exc_info=True)
        return 1


def warn_unknown_environment(environ: Mapping[str, str]) -> None:
    """One warning naming the ignored ``VOXMON_*`` variables and the ones voxmon reads."""
    unknown = unknown_environment(environ)
    if unknown:
        log.warning(
            "ignoring %s: not a voxmon setting; voxmon reads %s",
            ", ".join(unknown),
            ", ".join(environment_variables()),
        )


def _run(args: argparse.Namespace, settings: Settings) -> int:
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
        if settings.log_format == "json":  # a log shipper reads this stream line by line
            log.error("voxmon: %s", exc.message)
        else:
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
        f" database {settings.location.shown}, auth {'on' if settings.auth_enabled else 'off'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
