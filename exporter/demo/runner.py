"""Sending the demo traffic: pace the simulation on a clock and emit it through the client
(``voxmon_client``), report progress, and turn the client's counts into an exit status."""

from __future__ import annotations

import argparse
import random
import sys
import threading
import urllib.request
from collections.abc import Callable
from datetime import timedelta

from voxmon_client import ClientStats, Emitter

from exporter.clock import Clock, SystemClock
from exporter.demo.shape import DemoConfig
from exporter.demo.traffic import Simulation
from exporter.settings import Settings

Emit = Callable[..., str]
Wait = Callable[[float], bool]
"""Sleep for so many seconds; True means stop now (``threading.Event.wait``)."""


def run(
    simulation: Simulation,
    emit: Emit,
    clock: Clock,
    wait: Wait,
    duration_s: float | None = None,
    progress: Callable[[float], None] | None = None,
    every_s: float = 10.0,
) -> None:
    """Emit the simulation's events in real time on ``clock`` for ``duration_s`` seconds
    (None: until ``wait`` says stop). Timestamps are the run's start wall time plus each
    event's offset, minus its lateness. With a ``FakeClock`` and a ``wait`` that advances
    it, a long run takes no wall time (tests)."""
    start_mono, start_wall = clock.monotonic(), clock.now()
    next_report = every_s
    for item in simulation.emissions(duration_s):
        ahead = start_mono + item.at - clock.monotonic()
        if ahead > 0 and wait(ahead):
            return
        fields = {**item.fields, "timestamp": start_wall + timedelta(seconds=item.at - item.lag_s)}
        emit(item.event_type, **fields)
        if item.duplicate:
            emit(item.event_type, **fields)
        if progress is not None and item.at >= next_report:
            progress(item.at)
            next_report += every_s


def _wait_ready(url: str, stop: threading.Event, timeout_s: float = 30.0) -> bool:
    """Poll ``/readyz`` (``make demo`` starts the daemon and the generator together)."""
    for _ in range(int(timeout_s / 0.2)):
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/readyz", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            if stop.wait(0.2):
                break
    return False


def generate(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> int:
    """Send until ``--duration``, Ctrl-C or ``stop``, then flush and report."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = args.url or f"http://{host}:{settings.port}"
    config = DemoConfig(rate=args.rate, orgs=max(1, args.orgs)).with_failures(dict(args.failure))
    emitter = Emitter(url, token=args.token, capacity=100_000)
    clock = SystemClock()

    def report(at: float) -> None:
        s = emitter.stats()
        print(
            f"demo t={at:5.0f}s emitted={s.emitted} accepted={s.accepted} dup={s.duplicates}"
            f" rejected={s.rejected} failed={s.failed} dropped={s.dropped} pending={s.pending}",
            file=sys.stderr,
        )

    print(f"demo: {config.rate:g} notes/s across {config.orgs} orgs -> {url}", file=sys.stderr)
    interrupted = False
    try:
        if not _wait_ready(url, stop) and not stop.is_set():
            print("demo: voxmon is not ready; sending anyway (the client retries)", file=sys.stderr)
        run(Simulation(config, random.Random(args.seed)), emitter.emit, clock, stop.wait,
            args.duration, report)  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C also stops the daemon under `make demo`: don't linger
    stats = emitter.close(2 if interrupted or stop.is_set() else 10)
    print(f"demo done: {stats}", file=sys.stderr)
    return exit_status(stats, interrupted)


def exit_status(stats: ClientStats, interrupted: bool) -> int:
    """0 when every event reached voxmon or was dropped by the outbox's bound; 1 when
    voxmon refused some (``rejected``), the client gave some up after its bounded retries
    (``failed``) or left some undelivered at close (``abandoned``). Ctrl-C is 0: the user
    stopped the run, and what was in flight is knowingly left."""
    if interrupted:
        return 0
    return 0 if stats.rejected == stats.failed == stats.abandoned == 0 else 1
