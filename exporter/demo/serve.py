"""``voxmon demo --serve`` (what ``make demo`` runs): the daemon beside the traffic
generator, as a child process. Whatever ``serve`` would refuse (a daemon already on this
database or port) is refused before anything starts, through ``check-config``'s checks, and
when the daemon exits the generator stops and reports the daemon's exit code."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable

from exporter import preflight
from exporter.clock import Clock
from exporter.settings import Settings

STOP_TIMEOUT_S = 30.0
"""How long the daemon gets to drain its queue after the generator is done."""


def run_beside(
    settings: Settings,
    config: str | None,
    clock: Clock,
    generate: Callable[[threading.Event], int],
) -> int:
    """Start ``voxmon serve`` (same configuration file and environment), run
    ``generate(stop)`` with ``stop`` set once the daemon exits, then stop the daemon.
    Returns 2 (nothing started) for a refusal, the daemon's code if it exited first."""
    problems = preflight.problems(settings, clock)
    for problem in problems:
        print(f"voxmon: {problem}", file=sys.stderr)
    if problems:
        return 2
    options = ["--config", config] if config else []
    daemon = subprocess.Popen([sys.executable, "-m", "exporter", *options, "serve"])
    stop = threading.Event()

    def watch() -> None:
        daemon.wait()
        stop.set()

    threading.Thread(target=watch, name="voxmon-demo-daemon", daemon=True).start()
    try:
        code = generate(stop)
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
