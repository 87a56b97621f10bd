"""The demo's run on a fake clock (a stop or the end of ``--duration`` finishes every note
in flight, stamped no later than the stop), the options its daemon gets, and the exit
status from the client's counts: every way an event can be lost fails the run, except
Ctrl-C."""

from __future__ import annotations

import argparse
import random
from datetime import timedelta
from typing import Any

import pytest
from voxmon_client import ClientStats

from exporter.demo.runner import exit_status, run
from exporter.demo.serve import daemon_options
from exporter.demo.shape import DemoConfig
from exporter.demo.traffic import Simulation
from tests.conftest import T0
from tests.tools import FakeClock


def stats(**counts: int) -> ClientStats:
    names = ("emitted", "accepted", "duplicates", "rejected", "dropped", "abandoned", "failed")
    return ClientStats(**{**dict.fromkeys((*names, "pending", "retries"), 0), **counts})


@pytest.mark.parametrize(
    ("counts", "interrupted", "code"),
    [
        ({"emitted": 10, "accepted": 10}, False, 0),
        ({"emitted": 10, "accepted": 8, "duplicates": 2, "retries": 3}, False, 0),
        ({"emitted": 10, "accepted": 9, "dropped": 1}, False, 0),
        ({"emitted": 10, "accepted": 9, "rejected": 1}, False, 1),
        ({"emitted": 10, "accepted": 9, "abandoned": 1}, False, 1),
        ({"emitted": 10, "accepted": 9, "failed": 1}, False, 1),
        ({"emitted": 10, "accepted": 5, "failed": 5}, True, 0),
    ],
)
def test_demo_exit_status_counts_failed_like_rejected_and_abandoned(
    counts: dict[str, int], interrupted: bool, code: int
) -> None:
    assert exit_status(stats(**counts), interrupted) == code


def test_demo_run_stopped_midway_finishes_every_note_stamped_no_later_than_the_stop() -> None:
    """Ctrl-C at 30 s: nothing arrives any more, every note started gets its last events
    at once (completed or failed), none stamped after the stop."""
    clock, sent = FakeClock(T0), []
    stop_at = clock.monotonic() + 30
    simulation = Simulation(DemoConfig(rate=5), random.Random(8))

    def emit(event_type: str, **fields: Any) -> str:
        sent.append((event_type, fields))
        return str(fields["event_id"])

    def wait(seconds: float) -> bool:
        if clock.monotonic() + seconds > stop_at:
            return True  # the stop request
        clock.advance(seconds)
        return False

    lasted = run(simulation, emit, clock, wait)
    assert 29 < lasted <= 30
    received = {f["artifact_id"] for t, f in sent if t == "artifact_received"}
    ended = [f["artifact_id"] for t, f in sent if t in ("artifact_completed", "artifact_failed")]
    assert sorted(ended) == sorted(received) and len(received) > 100
    assert max(f["timestamp"] for _, f in sent) <= T0 + timedelta(seconds=lasted)
    assert simulation.in_flight == 0


def test_demo_run_with_a_duration_lasts_it_then_drains() -> None:
    clock = FakeClock(T0)
    end = clock.monotonic() + 20
    simulation = Simulation(DemoConfig(rate=2), random.Random(1))
    emitted: list[str] = []

    def emit(event_type: str, **fields: Any) -> str:
        emitted.append(event_type)
        return ""

    def wait(seconds: float) -> bool:
        clock.advance(seconds)
        return False

    lasted = run(simulation, emit, clock, wait, 20.0)
    assert lasted == 20.0 and clock.monotonic() == end
    assert emitted.count("artifact_received") == simulation.counts["notes"] > 20
    assert simulation.in_flight == 0


def test_demo_serve_forwards_the_daemon_options() -> None:
    args = argparse.Namespace(config="v.toml", db_path="d.db", host=None, port=9999,
                              log_level=None, log_format="json", rate=3.0)  # fmt: skip
    assert daemon_options(args) == [
        "--config", "v.toml", "--db", "d.db", "--port", "9999", "--log-format", "json",
    ]  # fmt: skip


def test_demo_run_behind_schedule_still_stops_at_the_request() -> None:
    """A generator that cannot keep up (every send takes longer than the gap to the next
    note) never has time to wait; Ctrl-C or SIGTERM must still stop it at the next event,
    not after the whole run (it once ignored SIGTERM and grew to gigabytes at --rate 1e9)."""
    clock, sent, stop = FakeClock(T0), [], False
    simulation = Simulation(DemoConfig(rate=5), random.Random(3))

    def emit(event_type: str, **fields: Any) -> str:
        nonlocal stop
        sent.append((event_type, fields))
        clock.advance(10.0)  # a slow machine: always behind
        stop = True  # the signal arrives during the first send
        return ""

    def wait(seconds: float) -> bool:
        clock.advance(seconds)
        return stop

    run(simulation, emit, clock, wait, 600.0)
    received = {f["artifact_id"] for t, f in sent if t == "artifact_received"}
    ended = {f["artifact_id"] for t, f in sent if t in ("artifact_completed", "artifact_failed")}
    assert len(received) == 2 and ended == received  # the one sent, the one due at the stop
    assert simulation.in_flight == 0
