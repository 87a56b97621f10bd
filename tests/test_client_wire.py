"""The client's wire format, standard library only: events encoded one by one (datetimes as
RFC 3339, UUIDs as strings, what JSON cannot hold refused per event), halves that resend the
first bytes, and ``Retry-After`` read as seconds or as an HTTP date."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from voxmon_client.outbox import EventError
from voxmon_client.wire import Send, encode, retry_after_s

from exporter.timestamps import parse_timestamp

WHEN = datetime(2024, 5, 1, 12, 30, 15, 250_000, tzinfo=UTC)


def test_wire_encodes_datetimes_as_rfc3339_that_voxmon_parses() -> None:
    paris = WHEN.astimezone(timezone(timedelta(hours=2)))
    batch, errors = encode([
        {"event_id": "a", "timestamp": WHEN},
        {"event_id": "b", "timestamp": paris, "voice_note_id": uuid.UUID(int=7)},
    ])  # fmt: skip
    assert errors == [] and batch.ids == ("a", "b")
    first, second = json.loads(batch.body)
    assert first == {"event_id": "a", "timestamp": "2024-05-01T12:30:15.250000+00:00"}
    assert second["timestamp"] == "2024-05-01T14:30:15.250000+02:00"
    assert second["voice_note_id"] == "00000000-0000-0000-0000-000000000007"
    assert parse_timestamp(second["timestamp"]) == parse_timestamp(first["timestamp"])
    assert batch.send() == Send(batch.body, 2)
    assert batch.body.startswith(b'[{"event_id":"a","timestamp":"2024-05-01T12:30:15.25')


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (float("nan"), "unencodable: Out of range float values are not JSON compliant"),
        (float("inf"), "unencodable: Out of range float values are not JSON compliant"),
        ({1, 2}, "unencodable: set is not JSON serializable"),
        (object(), "unencodable: object is not JSON serializable"),
    ],
)
def test_wire_refuses_what_json_cannot_hold_per_event(value: object, reason: str) -> None:
    events = [
        {"event_id": "ok-1", "duration_ms": 5.0},
        {"event_id": "bad", "event_type": "claims_extracted", "metadata": {"confidence": value}},
        {"event_id": "ok-2", "text": "café ✓"},
    ]
    batch, errors = encode(events)
    assert errors == [EventError("bad", "", reason)]
    assert batch.ids == ("ok-1", "ok-2")
    assert json.loads(batch.send().body) == [events[0], events[2]]
    assert "café ✓".encode() in batch.body  # UTF-8 on the wire, not \u escapes


def test_wire_halves_resend_the_bytes_first_encoded() -> None:
    metadata: dict[str, object] = {"claim_count": 1, "confidence": 0.1 + 0.2, "note": "é\n"}
    events = [{"event_id": f"e{i}", "at": WHEN, "metadata": metadata} for i in range(5)]
    batch, _ = encode(events)
    metadata["claim_count"] = 99  # the caller reuses its object after emit()
    left, right = batch.halves()
    assert (left.ids, right.ids) == (("e0", "e1"), ("e2", "e3", "e4"))
    assert (left.send().count, right.send().count) == (2, 3)
    # byte for byte the events first encoded: the halves joined are the batch again
    assert b"[" + left.body[1:-1] + b"," + right.body[1:-1] + b"]" == batch.body
    assert json.loads(left.body)[0]["metadata"]["claim_count"] == 1
    quarters = [*left.halves(), *right.halves()]
    assert [q.ids for q in quarters] == [("e0",), ("e1",), ("e2",), ("e3", "e4")]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 0.0),
        ("", 0.0),
        ("7", 7.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("Wed, 01 May 2024 12:30:45 GMT", 29.75),
        ("Wed, 01 May 2024 12:00:00 GMT", 0.0),  # in the past
        ("soon", 0.0),
    ],
)
def test_wire_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float) -> None:
    assert retry_after_s(header, WHEN) == pytest.approx(seconds)
