"""Sending the demo traffic: pace the simulation on a clock and emit it through the client
(``voxmon_client``), finish the notes in flight when the run stops, report progress, and
turn the client's counts into an exit status."""

from __future__ import annotations

import argparse
import random
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from itertools import chain

from voxmon_client import ClientStats, Emitter

from exporter.clock import Clock, SystemClock
from exporter.demo.shape import DemoConfig
from exporter.demo.traffic import Emission, Simulation
from exporter.settings import Settings

Emit = Callable[..., str]
Wait = Callable[[float], bool]
"""Sleep for so many seconds; True means stop now (``threading.Event.wait``)."""
DRAIN_S = 5.0
"""How long a stopped run (Ctrl-C, SIGTERM) may take to deliver what is left."""
READY_S = 30.0
"""How long ``--serve`` waits for its own daemon to answer ``/readyz``."""


def run(
    simulation: Simulation,
    emit: Emit,
    clock: Clock,
    wait: Wait,
    duration_s: float | None = None,
    progress: Callable[[float], None] | None = None,
    every_s: float = 10.0,
) -> float:
    """Emit the simulation's events in real time on ``clock`` for ``duration_s`` seconds
    (None: until ``wait`` says stop), then finish every note in flight at once (see
    ``Simulation.drain``). Timestamps are the run's start wall time plus each event's
    offset (capped at the stop), minus its lateness. Returns the seconds the run lasted.
    With a ``FakeClock`` and a ``wait`` that advances it, a long run takes no wall time."""
    start_mono, start_wall = clock.monotonic(), clock.now()
    next_report, stopped_at = every_s, None
    for item in simulation.emissions(duration_s):
        ahead = start_mono + item.at - clock.monotonic()
        if wait(max(0.0, ahead)):  # behind schedule too: a stop must not wait for the end
            stopped_at = clock.monotonic() - start_mono
            _send(emit, start_wall, chain([item], simulation.drain()), stopped_at)
            return stopped_at
        _send(emit, start_wall, [item])
        if progress is not None and item.at >= next_report:
            progress(item.at)
            next_report += every_s
    if duration_s is not None:  # the run lasts its duration, quiet end included
        wait(max(0.0, start_mono + duration_s - clock.monotonic()))
    stopped_at = clock.monotonic() - start_mono
    _send(emit, start_wall, simulation.drain(), stopped_at)
    return stopped_at


def _send(
    emit: Emit, start: datetime, items: Iterable[Emission], cap_s: float | None = None
) -> None:
    for item in items:
        at = item.at if cap_s is None else min(item.at, cap_s)
        fields = {**item.fields, "timestamp": start + timedelta(seconds=at - item.lag_s)}
        emit(item.event_type, **fields)
        if item.duplicate:
            emit(item.event_type, **fields)


def probe(url: str, timeout_s: float = 2.0) -> str | None:
    """None when voxmon at ``url`` answers ``/readyz`` 200; otherwise why not, one line.
    Nothing listening is reported at the first failed connect, not after retries."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/readyz", timeout=timeout_s):
            return None
    except urllib.error.HTTPError as exc:
        return f"voxmon at {url} is not ready (HTTP {exc.code})"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        why = getattr(reason, "strerror", None) or str(reason)
        return f"cannot reach voxmon at {url}: {why}"


def wait_ready(url: str, stop: threading.Event, timeout_s: float = READY_S) -> str | None:
    """Poll ``/readyz`` while ``stop`` is unset (``--serve``: its daemon is starting);
    None once ready, else the last reason."""
    why = probe(url)
    for _ in range(int(timeout_s / 0.2)):
        if why is None or stop.wait(0.2):
            break
        why = probe(url)
    return why


def target(args: argparse.Namespace, settings: Settings) -> str:
    """``--url``, else the daemon's address from the settings (a wildcard as loopback)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    host = f"[{host}]" if ":" in host else host
    return str(args.url or f"http://{host}:{settings.port}")


def generate(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> int:
    """Send until ``--duration`` or ``stop`` (Ctrl-C, SIGTERM, or ``--serve``'s daemon
    exiting), finish the notes in flight, flush for a bounded time and report. A voxmon
    that cannot be reached at start is one line and exit code 2."""
    url = target(args, settings)
    config = DemoConfig(rate=args.rate, orgs=max(1, args.orgs)).with_failures(dict(args.failure))
    ready = wait_ready(url, stop) if args.serve else probe(url)
    if ready is not None and (not args.serve or stop.is_set()):
        print(f"voxmon demo: {ready}", file=sys.stderr)
        return 2
    if ready is not None:
        print(f"demo: {ready}; sending anyway (the client retries)", file=sys.stderr)
    print(f"demo: {config.rate:g} notes/s across {config.orgs} orgs -> {url}", file=sys.stderr)
    emitter = Emitter(url, token=args.token, capacity=100_000)
    simulation = Simulation(config, random.Random(args.seed))
    run(simulation, emitter.emit, SystemClock(), stop.wait, args.duration, _reporter(emitter))
    stats = emitter.close(DRAIN_S if stop.is_set() else 10)
    print(f"demo done: {stats}", file=sys.stderr)
    return exit_status(stats, stop.is_set())


def _reporter(emitter: Emitter) -> Callable[[float], None]:
    def report(at: float) -> None:
        s = emitter.stats()
        print(
            f"demo t={at:5.0f}s emitted={s.emitted} accepted={s.accepted} dup={s.duplicates}"
            f" rejected={s.rejected} failed={s.failed} dropped={s.dropped} pending={s.pending}",
            file=sys.stderr,
        )

    return report


def exit_status(stats: ClientStats, interrupted: bool) -> int:
    """0 when every event reached voxmon or was dropped by the outbox's bound; 1 when
    voxmon refused some (``rejected``), the client gave some up after its bounded retries
    (``failed``) or left some undelivered at close (``abandoned``). A stopped run (Ctrl-C)
    is 0: the user ended it, and the drain was best effort within ``DRAIN_S``."""
    if interrupted:
        return 0
    return 0 if stats.rejected == stats.failed == stats.abandoned == 0 else 1
