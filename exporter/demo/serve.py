"""``voxmon demo --serve`` (what ``make demo`` runs): the daemon beside the traffic
generator, as a child process in its own process group, so a Ctrl-C in the terminal reaches
only the generator, which finishes its notes and then stops the daemon. Whatever ``serve``
would refuse (a daemon already on this database or port) is refused before anything
starts, through ``check-config``'s checks, and when the daemon exits the generator stops
and reports the daemon's exit code."""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from collections.abc import Callable

from exporter import preflight
from exporter.clock import Clock
from exporter.settings import Settings

STOP_TIMEOUT_S = 30.0
"""How long the daemon gets to drain its queue after the generator is done."""
FORWARDED = {
    "config": "--config",
    "db_path": "--db",
    "host": "--host",
    "port": "--port",
    "log_level": "--log-level",
    "log_format": "--log-format",
}
"""The demo's options that its daemon gets too (the daemon's name for each)."""

Generate = Callable[[argparse.Namespace, Settings, threading.Event], int]


def daemon_options(args: argparse.Namespace) -> list[str]:
    """``voxmon serve`` options repeating the ones given to the demo."""
    given = {flag: getattr(args, dest, None) for dest, flag in FORWARDED.items()}
    return [part for flag, v in given.items() if v is not None for part in (flag, str(v))]


def run_beside(
    settings: Settings,
    args: argparse.Namespace,
    clock: Clock,
    stop: threading.Event,
    generate: Generate,
) -> int:
    """Start ``voxmon serve`` (same options and environment), run ``generate`` with
    ``stop`` also set once the daemon exits, then stop the daemon (SIGTERM: it drains).
    Returns 2 (nothing started) for a refusal, the daemon's code if it exited first."""
    problems = preflight.problems(settings, clock)
    for problem in problems:
        print(f"voxmon: {problem}", file=sys.stderr)
    if problems:
        return 2
    command = [sys.executable, "-m", "exporter", "serve", *daemon_options(args)]
    daemon = subprocess.Popen(command, process_group=0)

    def watch() -> None:
        daemon.wait()
        stop.set()

    threading.Thread(target=watch, name="voxmon-demo-daemon", daemon=True).start()
    try:
        code = generate(args, settings, stop)
    finally:
        exited = daemon.poll()
        _stop(daemon)
    if exited is None:
        return code
    print(f"demo: voxmon serve exited with code {exited}; the demo stopped", file=sys.stderr)
    return exited if exited > 0 else 1


def _stop(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is None:
        daemon.terminate()  # SIGTERM: the daemon drains its queue and exits 0
    try:
        daemon.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
