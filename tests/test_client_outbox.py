"""The client's outbox: the bound (drop-oldest, counted exactly) over queued and in-flight
events."""

from __future__ import annotations

from voxmon_client.outbox import Outbox


def test_outbox_drops_oldest_and_counts_every_drop() -> None:
    outbox = Outbox(capacity=5, batch_size=2)
    for i in range(3):
        outbox.put({"event_id": f"e{i}"})
    assert [e["event_id"] for e in outbox.take()] == ["e0", "e1"]
    for i in range(3, 13):
        outbox.put({"event_id": f"e{i}"})
    stats = outbox.stats()
    assert (stats.emitted, stats.pending, stats.dropped) == (13, 5, 8)
    assert [e["event_id"] for e in outbox.queue] == ["e10", "e11", "e12"]


def test_outbox_drops_the_new_event_when_everything_is_in_flight() -> None:
    outbox = Outbox(capacity=3, batch_size=10)
    for i in range(3):
        outbox.put({"event_id": f"e{i}"})
    assert len(outbox.take()) == 3
    assert outbox.put({"event_id": "e3"}) is False
    assert (outbox.stats().dropped, outbox.stats().pending, len(outbox.queue)) == (1, 3, 0)
