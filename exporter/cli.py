"""The ``voxmon`` command line: ``serve`` and ``check-config`` (rollup commands join later)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from exporter.app import RUNNER_OPTIONS, create_app
from exporter.errors import ConfigError
from exporter.settings import Settings

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voxmon", description=__doc__)
    parser.add_argument("--config", help="path to voxmon.toml (default: ./voxmon.toml if present)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the daemon")
    _add_overrides(serve)
    check = commands.add_parser("check-config", help="validate the configuration and exit")
    _add_overrides(check)
    return parser


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
    if args.command == "check-config":
        print(
            f"configuration OK: listening on {settings.host}:{settings.port},"
            f" database {settings.db_path}, auth {'on' if settings.auth_enabled else 'off'}"
        )
        return 0
    app = create_app(settings)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        **RUNNER_OPTIONS,  # type: ignore[arg-type]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
