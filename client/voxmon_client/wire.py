"""What goes over the wire, with the standard library's ``json``: the ingest path, events
encoded one by one into a JSON array, and voxmon's answers read back into counts and
per-event errors. No I/O."""

from __future__ import annotations

import email.utils
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from voxmon_client.outbox import RECENT_ERRORS, EventError, Fields

log = logging.getLogger(__name__)

INGEST_PATH = "/v1/events"
MAX_RESPONSE_BYTES = 1024 * 1024
"""The most of an answer's body either emitter reads (voxmon's answers stay far below it:
at most 100 rejections are listed); a longer body is a failed exchange, retried."""


@dataclass(frozen=True, slots=True)
class Response:
    """What the transport saw: an HTTP status, or ``status=None`` for a connection error or
    timeout (``error`` says which)."""

    status: int | None
    body: bytes = b""
    retry_after: str | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Send:
    """The sender should POST ``body`` (a JSON array of ``count`` events) now."""

    body: bytes
    count: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Encoded events (one JSON array) and their ids. A retry resends ``body``; a half is
    cut from ``body`` itself, never from the caller's objects, which may have changed."""

    body: bytes
    ids: tuple[str, ...]

    def send(self) -> Send:
        return Send(self.body, len(self.ids))

    def halves(self) -> tuple[Batch, Batch]:
        """Two batches of the events in order. Decoding our own JSON and encoding it again
        gives the same bytes per event (only a rare split pays for it)."""
        events, mid = json.loads(self.body), len(self.ids) // 2
        return (
            Batch(_ENCODER.encode(events[:mid]).encode(), self.ids[:mid]),
            Batch(_ENCODER.encode(events[mid:]).encode(), self.ids[mid:]),
        )


def _plain(value: object) -> object:
    """JSON for what pipeline code passes besides JSON's own types: datetimes (RFC 3339:
    ``isoformat`` of an aware datetime carries its offset) and UUIDs."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# allow_nan=False: NaN and infinities are not JSON, and voxmon would refuse the whole body.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain
)


def encode(events: list[Fields]) -> tuple[Batch, list[EventError]]:
    """The events as one JSON array; an event that cannot be encoded is left out with its
    error (it counts as rejected: it could never be stored)."""
    ids = tuple(str(event.get("event_id")) for event in events)
    try:  # one call for the whole batch: a third cheaper than one per event
        return Batch(_ENCODER.encode(events).encode(), ids), []
    except Exception:
        return _encode_each(events)


def _encode_each(events: list[Fields]) -> tuple[Batch, list[EventError]]:
    """Event by event, to tell the ones that cannot be encoded from the others."""
    items, ids, errors = [], [], []
    for event in events:
        try:
            items.append(_ENCODER.encode(event).encode())
        except Exception as exc:  # whatever the caller passed, emit() must never break
            log.error("voxmon: cannot encode %s event: %s", event.get("event_type"), exc)
            errors.append(EventError(str(event.get("event_id")), "", f"unencodable: {exc}"))
            continue
        ids.append(str(event.get("event_id")))
    return Batch(b"[" + b",".join(items) + b"]", tuple(ids)), errors


def outcome(batch: Batch, status: int, body: bytes) -> tuple[list[EventError], dict[str, int]]:
    """Errors and counts for a final answer. 2xx and 400 list rejections per item (the list
    may be truncated, so what voxmon did not accept is counted rejected); any other final
    status refuses the whole request."""
    count = len(batch.ids)
    try:
        answer: Any = json.loads(body) if status < 300 or status == 400 else None
        accepted = min(max(int(answer["accepted"]), 0), count)
        duplicates = min(max(int(answer["duplicates"]), 0), count - accepted)
        rows = answer["rejected"]
    except Exception:
        if status < 300:  # committed, whatever the body says
            return [], {"accepted": count}
        message = error_message(status, body)
        log.error("voxmon refused %d events: %s", count, message)
        ids = batch.ids[-RECENT_ERRORS:]
        return [EventError(i, "", message) for i in ids], {"rejected": count}
    rejected, errors = count - accepted - duplicates, _item_errors(rows)
    if rejected:
        log.warning("voxmon rejected %d of %d events; first: %s", rejected, count, errors[:1])
    return errors, {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}


def _item_errors(rows: Any) -> list[EventError]:
    """The last ``RECENT_ERRORS`` errors of the rejected items of a 200 or 400 body (none
    if the list is not the documented shape: the counts stand without them)."""
    errors = []
    try:
        for row in rows[-RECENT_ERRORS:]:
            event_id = str(row.get("event_id") or "")
            for error in row.get("errors") or [{}]:
                field, message = error.get("field", ""), error.get("message", "rejected")
                errors.append(EventError(event_id, str(field), str(message)))
    except Exception:
        log.warning("voxmon: unexpected rejected list: %.200r", rows)
    return errors[-RECENT_ERRORS:]


def error_message(status: int, body: bytes) -> str:
    """``HTTP 401 unauthorized: <message>`` from voxmon's error body, else its first bytes."""
    try:
        error = json.loads(body)["error"]
        return f"HTTP {status} {error['code']}: {error['message']}"
    except Exception:
        return f"HTTP {status}: {body[:200].decode(errors='replace')}"


def retry_after_s(value: str | None, now: datetime) -> float:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (against ``now``, UTC);
    0 when absent or bad."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (email.utils.parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return 0.0
