"""The ``voxmon demo`` subcommand: its arguments, and the run (``--serve`` starts a daemon
beside it). The sending needs the client distribution, imported only when the demo runs."""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from exporter.catalog import PROCESSING_STAGES
from exporter.clock import SystemClock
from exporter.demo import serve
from exporter.demo.shape import DEFAULT_ORGS, DEFAULT_RATE
from exporter.settings import Settings


def add_parser(commands: Any) -> None:
    """The ``demo`` subcommand (``commands`` is the CLI's subparsers object)."""
    demo = commands.add_parser(
        "demo",
        help="send realistic pipeline traffic to a running voxmon",
        description="Voice notes flow through the stages with lognormal latencies, failures,"
        " retries, disambiguation, AI cost, late and duplicate deliveries.",
    )
    where = demo.add_mutually_exclusive_group()
    where.add_argument("--url", help="voxmon base URL (default: from host and port settings)")
    where.add_argument(
        "--serve",
        action="store_true",
        help="run voxmon serve beside the generator (make demo); stop when it exits",
    )
    demo.add_argument("--rate", type=_positive, default=DEFAULT_RATE, help="notes per second")
    demo.add_argument("--orgs", type=int, default=DEFAULT_ORGS, help="organisations")
    demo.add_argument("--duration", type=_positive, help="seconds to run (default: until ^C)")
    demo.add_argument("--token", help="bearer token with the ingest scope")
    demo.add_argument("--seed", type=int, help="random seed, for a reproducible run")
    demo.add_argument(
        "--failure",
        action="append",
        type=_failure,
        default=[],
        metavar="STAGE=P",
        help="failure probability of one stage attempt",
    )


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _failure(text: str) -> tuple[str, float]:
    stage, _, p = text.partition("=")
    if stage not in PROCESSING_STAGES:
        raise argparse.ArgumentTypeError(f"stage must be one of {', '.join(PROCESSING_STAGES)}")
    try:
        probability = float(p)
    except ValueError:
        probability = -1.0
    if not 0 <= probability <= 1:
        raise argparse.ArgumentTypeError(f"{text}: probability must be in [0, 1]")
    return stage, probability


MISSING_CLIENT = (
    "voxmon demo sends through the client library, which is not installed:"
    " pip install ./client (make demo installs it)"
)


def command(args: argparse.Namespace, settings: Settings) -> int:
    """``voxmon demo``: run until ``--duration`` or Ctrl-C, then flush and report; with
    ``--serve``, beside a daemon of its own that ends the run if it exits. 2 when the
    client library is missing (the daemon itself does not need it)."""
    try:
        from exporter.demo.runner import generate
    except ModuleNotFoundError as exc:
        if exc.name != "voxmon_client":
            raise
        print(f"voxmon: {MISSING_CLIENT}", file=sys.stderr)
        return 2
    if not args.serve:
        return generate(args, settings, threading.Event())

    def generate_until(stop: threading.Event) -> int:
        return generate(args, settings, stop)

    return serve.run_beside(settings, args.config, SystemClock(), generate_until)
