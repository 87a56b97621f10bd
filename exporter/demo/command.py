"""The ``voxmon demo`` subcommand: its arguments, and the run (``--serve`` starts a daemon
beside it). Ctrl-C or SIGTERM stop the run gracefully: the notes in flight are finished and
delivered for at most a few seconds, and the exit code is 0. The sending needs the client
distribution, imported only when the demo runs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from exporter.catalog import PROCESSING_STAGES
from exporter.clock import SystemClock
from exporter.demo import serve
from exporter.demo.shape import DEFAULT_ORGS, DEFAULT_RATE
from exporter.settings import Settings

_D = Settings()
MAX_RATE = 1000.0
"""About 12,000 events/s and 17,000 notes in flight: more than one voxmon on 2 cores takes,
and a generator asked for more only falls behind and grows."""
MAX_ORGS = 100_000
RATE_HELP = (
    f"new notes per second, at most {MAX_RATE:g} (default: %(default)s;"
    " about 17 in flight per note/s)"
)
ORGS_HELP = f"organisations, 1 to {MAX_ORGS} (default: %(default)s)"


def add_parser(commands: Any) -> None:
    """The ``demo`` subcommand (``commands`` is the CLI's subparsers object)."""
    demo = commands.add_parser(
        "demo",
        help="send realistic pipeline traffic to a running voxmon",
        description="Voice notes flow through the stages with lognormal latencies, failures,"
        " retries, disambiguation, AI cost, late and duplicate deliveries. Ctrl-C stops it:"
        " the notes in flight are finished first.",
    )
    where = demo.add_mutually_exclusive_group()
    where.add_argument("--url", type=_url, help="voxmon base URL (default: http://HOST:PORT)")
    where.add_argument(
        "--serve",
        action="store_true",
        help="run voxmon serve beside the generator (make demo); stop when it exits",
    )
    demo.add_argument("--host", help=f"host of the voxmon to send to (default: {_D.host})")
    demo.add_argument(
        "--port",
        type=int,
        help=f"port of the voxmon to send to; with --serve, the port its daemon listens on"
        f" (default: {_D.port})",
    )
    demo.add_argument("--rate", type=_rate, default=DEFAULT_RATE, help=RATE_HELP)
    demo.add_argument("--orgs", type=_orgs, default=DEFAULT_ORGS, help=ORGS_HELP)
    demo.add_argument("--duration", type=_positive, help="seconds to run (default: until ^C)")
    demo.add_argument("--token", help="bearer token with the ingest scope (default: none)")
    demo.add_argument("--seed", type=int, help="random seed, for a reproducible run")
    demo.add_argument(
        "--failure",
        action="append",
        type=_failure,
        default=[],
        metavar="STAGE=P",
        help="failure probability of one attempt of a stage; repeatable (default: per-stage"
        " profile: transcription 0.05, claims_extraction 0.03, entity_resolution 0.02,"
        " draft_generation 0.08)",
    )


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _rate(text: str) -> float:
    value = _positive(text)
    if value > MAX_RATE:
        raise argparse.ArgumentTypeError(f"at most {MAX_RATE:g} notes/s, got {text}")
    return value


def _orgs(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_ORGS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_ORGS}, got {text}")
    return value


def _url(text: str) -> str:
    try:
        parts = urllib.parse.urlsplit(text)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a bad port or IPv6 literal
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"an http:// or https:// URL, got {text!r}")
    return text


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
    """``voxmon demo``: run until ``--duration``, Ctrl-C or SIGTERM, then finish the notes
    in flight, flush and report; with ``--serve``, beside a daemon of its own that ends the
    run if it exits. 2 when the client library is missing (the daemon does not need it)."""
    try:
        from exporter.demo.runner import generate
    except ModuleNotFoundError as exc:
        if exc.name != "voxmon_client":
            raise
        print(f"voxmon: {MISSING_CLIENT}", file=sys.stderr)
        return 2
    if args.url and (args.host or args.port):
        print("voxmon: demo takes --url or --host/--port, not both", file=sys.stderr)
        return 2
    with _stop_on_signals() as stop:
        try:
            if not args.serve:
                return generate(args, settings, stop)
            return serve.run_beside(settings, args, SystemClock(), stop, generate)
        except KeyboardInterrupt:  # a second Ctrl-C: the user wants out now
            print("demo: interrupted again; quitting without finishing", file=sys.stderr)
            return 130


STOPPING = b"demo: stopping; finishing the notes in flight (Ctrl-C again to quit)\n"


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGINT or SIGTERM (a second SIGINT raises
    KeyboardInterrupt as usual); the previous handlers are restored on exit. Outside the
    main thread (an embedding program) signals are left alone."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if not stop.is_set():
            os.write(sys.stderr.fileno(), STOPPING)  # print() is not reentrant
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
