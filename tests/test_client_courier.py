"""The sans-I/O courier on a fake clock against a scripted server: batching, retries with
backoff, Retry-After, and the bounds (split on 5xx and 413, give up alone or at the budget,
a whole-sender pause while voxmon fails, new batches between retries)."""

from __future__ import annotations

import email.utils
import random
from collections.abc import Callable
from datetime import timedelta

import msgspec
import pytest
from voxmon_client import Backoff, EventError
from voxmon_client.courier import Courier
from voxmon_client.outbox import Outbox
from voxmon_client.wire import Response, Send

from tests.conftest import T0
from tests.tools import FakeClock

Server = Callable[[list[str]], Response]


def courier(clock: FakeClock, capacity: int = 100, batch_size: int = 3) -> Courier:
    return Courier(Outbox(capacity, batch_size), clock, Backoff(), 1.0, random.Random(1))


def put(c: Courier, *ids: str) -> None:
    for event_id in ids:
        c.outbox.put({"event_id": event_id, "event_type": "artifact_received"})


def sent_ids(step: Send | float | None) -> list[str]:
    assert isinstance(step, Send)
    return [e["event_id"] for e in msgspec.json.decode(step.body)]


def ok(accepted: int, duplicates: int = 0, rejected: int = 0) -> Response:
    rows = [{"index": i, "event_id": None, "errors": []} for i in range(rejected)]
    body = {"accepted": accepted, "duplicates": duplicates, "rejected": rows}
    return Response(200, msgspec.json.encode(body))


def test_courier_sends_a_full_batch_at_once_and_a_partial_one_after_the_interval(
    clock: FakeClock,
) -> None:
    c = courier(clock)
    put(c, "a", "b")
    assert c.next() == 1.0
    clock.advance(0.25)
    assert c.next() == 0.75
    put(c, "c", "d")
    assert sent_ids(c.next()) == ["a", "b", "c"]
    c.done(ok(3))
    assert c.next() == 1.0
    clock.advance(1.0)
    assert sent_ids(c.next()) == ["d"]


def test_courier_flush_sends_a_partial_batch_now(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a")
    c.flush_target = 1
    assert sent_ids(c.next()) == ["a"]
    c.done(ok(1))
    assert c.outbox.resolved == 1
    assert c.next() == 1.0


def test_courier_retries_the_same_bytes_after_retry_after(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    first = c.next()
    assert isinstance(first, Send)
    c.done(Response(503, b'{"error":{}}', "3"))
    assert c.next() == 3.0
    clock.advance(2.5)
    assert c.next() == 0.5
    clock.advance(0.5)
    assert c.next() == first
    c.done(ok(2, duplicates=1))
    stats = c.outbox.stats()
    assert (stats.accepted, stats.duplicates, stats.retries, stats.pending) == (2, 1, 1, 0)


def test_courier_retry_after_as_http_date(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    c.next()
    when = email.utils.format_datetime(T0 + timedelta(seconds=7), usegmt=True)
    c.done(Response(429, b"", when))
    assert c.next() == 7.0


@pytest.mark.parametrize("status", [None, 500, 502, 503, 504, 408, 429])
def test_courier_retries_server_and_connection_errors(clock: FakeClock, status: int | None) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    c.next()
    c.done(Response(status, error="ConnectionRefusedError" if status is None else ""))
    wait = c.next()
    assert isinstance(wait, float) and 0.05 <= wait <= 0.1
    assert c.outbox.stats().retries == 1 and c.outbox.stats().pending == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 415])
def test_courier_rejects_client_errors_without_retry(clock: FakeClock, status: int) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    c.next()
    c.done(Response(status, b'{"error":{"code":"x","message":"no","details":[]}}'))
    stats = c.outbox.stats()
    assert (stats.rejected, stats.retries, stats.pending) == (3, 0, 0)
    assert c.next() == 1.0


def test_courier_counts_per_item_rejections(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    c.next()
    c.done(ok(1, duplicates=1, rejected=1))
    stats = c.outbox.stats()
    assert (stats.accepted, stats.duplicates, stats.rejected) == (1, 1, 1)


def test_courier_rejects_unencodable_events_locally(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a")
    c.outbox.put({"event_id": "bad", "event_type": "x", "metadata": object()})
    put(c, "c")
    assert sent_ids(c.next()) == ["a", "c"]
    assert c.outbox.stats().rejected == 1


def test_courier_close_abandons_what_it_cannot_deliver_in_time(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a", "b", "c", "d")
    c.next()
    c.done(Response(None, error="down"))
    c.close_at = clock.monotonic() + 0.02
    assert c.next() == pytest.approx(0.02)
    clock.advance(0.02)
    assert c.next() is None
    stats = c.outbox.stats()
    assert (stats.abandoned, stats.pending) == (4, 0)


def test_backoff_doubles_within_jitter_bounds_up_to_the_cap() -> None:
    backoff, rng = Backoff(base_s=0.1, cap_s=1.0), random.Random(5)
    for attempt, ceiling in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]):
        delays = [backoff.delay(attempt, 0.0, rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant
    assert backoff.delay(0, 30.0, rng) == 30.0
    assert backoff.delay(0, 1e9, rng) == 60.0


# --- the bounds: nothing is retried forever --------------------------------------------

BOOM = b'{"error":{"code":"internal","message":"boom","details":[]}}'


def poisoned(ids: list[str]) -> Response:
    """500 for any batch holding an event whose id starts with ``p``, else all accepted."""
    return Response(500, BOOM) if any(i.startswith("p") for i in ids) else ok(len(ids))


def run(c: Courier, clock: FakeClock, server: Server, limit: int = 1000) -> list[list[str]]:
    """Drive ``c`` until it is idle, advancing the clock by every wait; the ids it sent."""
    sent: list[list[str]] = []
    while not c.idle and len(sent) < limit:
        step = c.next()
        if isinstance(step, Send):
            sent.append(sent_ids(step))
            c.done(server(sent[-1]))
        else:
            assert isinstance(step, float)
            clock.advance(step)
    return sent


def test_courier_splits_a_failing_batch_and_gives_up_only_the_event_that_fails_alone(
    clock: FakeClock,
) -> None:
    c = Courier(Outbox(100, 8), clock, Backoff(), 1.0, random.Random(1), max_attempts=2)
    put(c, "e0", "e1", "e2", "e3", "e4", "p5", "e6", "e7")
    sent = run(c, clock, poisoned)
    assert sent == [
        ["e0", "e1", "e2", "e3", "e4", "p5", "e6", "e7"],
        ["e0", "e1", "e2", "e3", "e4", "p5", "e6", "e7"],
        ["e0", "e1", "e2", "e3"],
        ["e4", "p5", "e6", "e7"],
        ["e4", "p5", "e6", "e7"],
        ["e4", "p5"],
        ["e6", "e7"],
        ["e4", "p5"],
        ["e4"],
        ["p5"],
        ["p5"],
    ]
    stats = c.outbox.stats()
    assert (stats.accepted, stats.failed, stats.pending, stats.retries) == (7, 1, 0, 7)
    assert stats.recent_errors == (
        EventError("p5", "", "given up: HTTP 500 on each of 2 attempts"),
    )


def test_courier_sends_new_batches_between_retries_of_a_failing_one(clock: FakeClock) -> None:
    c = Courier(Outbox(100, 2), clock, Backoff(), 1.0, random.Random(1), max_attempts=2)
    put(c, "p0", "e0")
    fresh = iter(range(1, 10))

    def server(ids: list[str]) -> Response:
        if "p0" in ids:  # the pipeline keeps emitting while voxmon fails this batch
            n = next(fresh)
            put(c, f"a{n}", f"b{n}")
        return poisoned(ids)

    assert run(c, clock, server) == [
        ["p0", "e0"], ["a1", "b1"], ["p0", "e0"], ["a2", "b2"], ["p0"], ["a3", "b3"], ["e0"],
        ["p0"], ["a4", "b4"],
    ]  # fmt: skip
    stats = c.outbox.stats()
    assert (stats.accepted, stats.failed, stats.pending) == (9, 1, 0)


def test_courier_413_halves_at_once_and_rejects_a_single_event(clock: FakeClock) -> None:
    too_large = b'{"error":{"code":"payload_too_large","message":"at most 2","details":[]}}'

    def small(ids: list[str]) -> Response:
        return ok(len(ids)) if len(ids) <= 2 else Response(413, too_large)

    c = courier(clock, batch_size=5)
    put(c, "a", "b", "c", "d", "e")
    assert [len(ids) for ids in run(c, clock, small)] == [5, 2, 3, 1, 2]
    assert clock.monotonic() == 1000.0  # no backoff for 413
    stats = c.outbox.stats()
    assert (stats.accepted, stats.rejected, stats.retries) == (5, 0, 2)
    c = courier(clock, batch_size=1)
    put(c, "big")
    run(c, clock, lambda ids: Response(413, too_large))
    stats = c.outbox.stats()
    assert (stats.rejected, stats.retries, stats.pending) == (1, 0, 0)
    message = "HTTP 413 payload_too_large: at most 2"
    assert stats.recent_errors == (EventError("big", "", message),)


def test_courier_later_answers_do_not_count_as_attempts(clock: FakeClock) -> None:
    answers = [Response(503, b"", "2"), Response(429, b""), Response(None, error="reset")] * 3
    c = courier(clock)
    put(c, "a", "b", "c")
    sent = run(c, clock, lambda ids: answers.pop(0) if answers else ok(3))
    assert len(sent) == 10 and all(ids == ["a", "b", "c"] for ids in sent)
    stats = c.outbox.stats()
    assert (stats.accepted, stats.failed, stats.retries) == (3, 0, 9)


def test_courier_unreachable_holds_new_batches_and_gives_up_at_the_budget(
    clock: FakeClock,
) -> None:
    c = Courier(Outbox(100, 3), clock, Backoff(), 1.0, random.Random(1), budget_s=30.0)
    put(c, "a", "b", "c", "d", "e", "f")
    sent = run(c, clock, lambda ids: Response(None, error="ConnectionRefusedError"))
    first = [ids for ids in sent if ids == ["a", "b", "c"]]
    assert sent == first + [["d", "e", "f"]] * (len(sent) - len(first))  # one batch at a time
    # each batch: attempts until the next backoff would end past its 30 s budget
    assert (len(first), len(sent)) == (12, 21)
    assert clock.monotonic() - 1000.0 == pytest.approx(59.39, abs=0.01)
    stats = c.outbox.stats()
    assert (stats.failed, stats.pending, stats.retries, len(stats.recent_errors)) == (6, 0, 19, 6)
    reason = "given up: ConnectionRefusedError; retry budget of 30 s spent"
    assert stats.recent_errors[0] == EventError("a", "", reason)


def test_courier_paces_the_whole_sender_while_voxmon_fails_everything(clock: FakeClock) -> None:
    c = Courier(Outbox(100, 64), clock, Backoff(), 1.0, random.Random(1))
    put(c, *(f"e{i}" for i in range(64)))
    sent = run(c, clock, lambda ids: Response(500, BOOM))
    stats = c.outbox.stats()
    assert (stats.failed, stats.pending) == (64, 0)
    # Bisecting 64 events to single ones would take 127 batches x 5 attempts; the pause
    # after every failure in a row keeps it to a trickle that ends with the budget.
    assert len(sent) == 48
    assert clock.monotonic() - 1000.0 == pytest.approx(139.61, abs=0.01)


def test_courier_keeps_the_latest_per_item_errors(clock: FakeClock) -> None:
    c = courier(clock, capacity=1000, batch_size=150)
    put(c, *(f"e{i}" for i in range(150)))
    rows = [
        {"index": i, "event_id": f"e{i}", "errors": [{"field": "metadata.claim_count",
                                                      "message": "must be <= 1000000"}]}
        for i in range(120)
    ]  # fmt: skip
    answer = {"accepted": 30, "duplicates": 0, "rejected": rows}
    run(c, clock, lambda ids: Response(200, msgspec.json.encode(answer)))
    stats = c.outbox.stats()
    assert (stats.accepted, stats.rejected, stats.retries) == (30, 120, 0)
    assert len(stats.recent_errors) == 100
    assert stats.recent_errors[0] == EventError("e20", "metadata.claim_count", "must be <= 1000000")
    assert stats.recent_errors[-1].event_id == "e119"


def test_courier_counts_rejections_beyond_a_truncated_list(clock: FakeClock) -> None:
    c = courier(clock, batch_size=5)
    put(c, "a", "b", "c", "d", "e")
    run(c, clock, lambda ids: ok(1, duplicates=1, rejected=1))  # 2 more not listed
    stats = c.outbox.stats()
    assert (stats.accepted, stats.duplicates, stats.rejected, stats.pending) == (1, 1, 3, 0)


def test_courier_a_refused_request_records_every_event(clock: FakeClock) -> None:
    c = courier(clock)
    put(c, "a", "b", "c")
    body = b'{"error":{"code":"unauthorized","message":"missing bearer token","details":[]}}'
    run(c, clock, lambda ids: Response(401, body))
    message = "HTTP 401 unauthorized: missing bearer token"
    assert c.outbox.stats().recent_errors == tuple(EventError(i, "", message) for i in "abc")
