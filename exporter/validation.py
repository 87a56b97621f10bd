"""Per-item validation of ingested events: wire decoding, catalog rules, the time horizon.

Each item is validated on its own, so one bad item never sinks a batch; every rejection
names the item's index, the field path and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec

from exporter.catalog import EVENT_TYPES, STAGES, EventType
from exporter.model import (
    MAX_DURATION_MS,
    DurationSource,
    Event,
    FieldError,
    Rejection,
    WireEvent,
)
from exporter.timestamps import TimestampError, check_range, datetime_to_ms

_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]*)`")
_MISSING = re.compile(r"^Object missing required field `([^`]*)`")
_decoder = msgspec.json.Decoder(WireEvent)
_TIME_FIELDS = ("timestamp", "stage_started_at", "stage_completed_at")


@dataclass(frozen=True, slots=True)
class Horizon:
    """Accepted event times: no more than ``future_ms`` ahead of now, no more than
    ``past_ms`` behind it (the late-event horizon, equal to event retention)."""

    future_ms: int = 5 * 60_000
    past_ms: int = 48 * 3_600_000


class ItemInvalid(Exception):
    """Raised inside validation to reject one item."""

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.error = FieldError(field, message)


def validate_items(
    items: Sequence[bytes | msgspec.Raw], now_ms: int, horizon: Horizon
) -> tuple[list[Event], list[Rejection]]:
    """Validate raw JSON items; returns accepted events (request order) and rejections."""
    events: list[Event] = []
    rejections: list[Rejection] = []
    for index, raw in enumerate(items):
        try:
            events.append(validate_item(raw, now_ms, horizon))
        except ItemInvalid as exc:
            rejections.append(Rejection(index, _event_id_of(raw), (exc.error,), exc.reason))
    return events, rejections


def validate_item(raw: bytes | msgspec.Raw, now_ms: int, horizon: Horizon) -> Event:
    """Validate one raw JSON object; raises ``ItemInvalid`` naming the field."""
    wire = _decode(raw)
    event_type = EVENT_TYPES.get(wire.event_type)
    if event_type is None:
        raise ItemInvalid(
            "unknown_event_type", "event_type", f"unknown event type {wire.event_type[:64]!r}"
        )
    ts_ms = _time(wire.timestamp, "timestamp")
    _check_horizon(ts_ms, now_ms, horizon)
    if event_type.needs_artifact and not wire.artifact_id:
        raise ItemInvalid(
            "missing_field", "artifact_id", f"artifact_id is required for {event_type.name}"
        )
    duration, source = _duration(wire, ts_ms)
    return Event(
        event_id=wire.event_id,
        event_type=wire.event_type,
        ts_ms=ts_ms,
        artifact_id=wire.artifact_id,
        org_id=wire.org_id,
        voice_note_id=wire.voice_note_id,
        coach_user_id=wire.coach_user_id,
        stage=_stage(wire, event_type),
        duration_ms=duration,
        duration_source=source,
        previous_status=wire.previous_status,
        new_status=wire.new_status,
        error_code=wire.error_code,
        error_message=wire.error_message,
        metadata=wire.metadata,
    )


def _decode(raw: bytes | msgspec.Raw) -> WireEvent:
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise _from_validation_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ItemInvalid("invalid_json", "", f"item is not valid JSON: {exc}") from None


def _from_validation_error(text: str) -> ItemInvalid:
    match = _PATH.search(text)
    path = match.group(1) if match else ""
    message = text[: match.start()] if match else text
    if unknown := _UNKNOWN.match(message):
        field = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        return ItemInvalid("unknown_field", field, f"unknown field {field!r}")
    if missing := _MISSING.match(message):
        field = f"{path}.{missing.group(1)}" if path else missing.group(1)
        return ItemInvalid("missing_field", field, f"{field} is required")
    if not path:
        return ItemInvalid("invalid_type", "", f"item must be a JSON object: {message}")
    if path in _TIME_FIELDS:
        return ItemInvalid(
            "invalid_timestamp", path, f"{message}; expected RFC 3339 with offset or epoch ms"
        )
    return ItemInvalid("invalid_value", path, message)


def _time(value: datetime | int, field: str) -> int:
    """Epoch ms of a wire time; outside years 1..9999 (UTC) is a rejection naming it."""
    try:
        ms = value if isinstance(value, int) else datetime_to_ms(value)
    except TimestampError:
        raise ItemInvalid(
            "invalid_timestamp", field, f"{field} needs Z or an offset (RFC 3339)"
        ) from None
    try:
        return check_range(ms)
    except TimestampError as exc:
        raise ItemInvalid("invalid_timestamp", field, f"{field}: {exc}") from None


def _check_horizon(ts_ms: int, now_ms: int, horizon: Horizon) -> None:
    if ts_ms > now_ms + horizon.future_ms:
        ahead = (ts_ms - now_ms) / 1000
        raise ItemInvalid(
            "future_timestamp",
            "timestamp",
            f"timestamp is {ahead:.0f} s in the future; at most {horizon.future_ms // 1000} s"
            " ahead of the server clock is accepted",
        )
    if ts_ms < now_ms - horizon.past_ms:
        behind_h = (now_ms - ts_ms) / 3_600_000
        raise ItemInvalid(
            "too_old",
            "timestamp",
            f"timestamp is {behind_h:.1f} h old, beyond the late-event horizon of"
            f" {horizon.past_ms / 3_600_000:g} h",
        )


def _stage(wire: WireEvent, event_type: EventType) -> str | None:
    if event_type.stage_from_payload:
        if wire.stage is not None and wire.stage not in STAGES:
            raise ItemInvalid(
                "stage_mismatch", "stage", f"unknown stage {wire.stage[:64]!r}; one of {STAGES}"
            )
        return wire.stage
    if wire.stage is not None and wire.stage != event_type.stage:
        expected = repr(event_type.stage) if event_type.stage else "no stage"
        raise ItemInvalid(
            "stage_mismatch",
            "stage",
            f"stage {wire.stage[:64]!r} does not match {event_type.name}, which has {expected}",
        )
    return event_type.stage


def _duration(wire: WireEvent, ts_ms: int) -> tuple[float | None, str | None]:
    """Precedence rule, first two steps (DESIGN §2); the event-based steps need storage."""
    end_ms = ts_ms
    if wire.stage_completed_at is not None:
        end_ms = _time(wire.stage_completed_at, "stage_completed_at")
    if wire.duration_ms is not None:
        return wire.duration_ms, DurationSource.GIVEN
    if wire.stage_started_at is None:
        return None, None
    start_ms = _time(wire.stage_started_at, "stage_started_at")
    duration = end_ms - start_ms
    if duration < 0:
        raise ItemInvalid(
            "negative_duration",
            "stage_started_at",
            f"stage_started_at is {-duration} ms after the stage's end; duration must be >= 0",
        )
    if duration > MAX_DURATION_MS:
        raise ItemInvalid(
            "invalid_value",
            "stage_started_at",
            f"duration from stage_started_at is {duration} ms; at most {MAX_DURATION_MS}",
        )
    return float(duration), DurationSource.STAGE_TIMES


def _event_id_of(raw: bytes | msgspec.Raw) -> str | None:
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    value = obj.get("event_id") if isinstance(obj, dict) else None
    return value[:128] if isinstance(value, str) else None
