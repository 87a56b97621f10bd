"""Per-item validation of ingested events: wire decoding, catalog rules, the time horizon.

Each item is validated on its own, so one bad item never sinks a batch; every rejection
names the item's index, the field path and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import msgspec

from exporter.catalog import EVENT_TYPES, STAGES, EventType
from exporter.live.orgs import OTHER_ORG
from exporter.model import (
    DAY_MS,
    DEFAULT_MAX_DURATION_DAYS,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    DurationSource,
    Event,
    FieldError,
    ItemWarning,
    Metadata,
    OpenMetadata,
    Rejection,
    WireEvent,
)
from exporter.timestamps import TimestampError, check_range, datetime_to_ms

_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]*)`")
_MISSING = re.compile(r"^Object missing required field `([^`]*)`")
_decoder = msgspec.json.Decoder(WireEvent)
_known_metadata = msgspec.json.Decoder(Metadata)
_open_metadata = msgspec.json.Decoder(OpenMetadata)
_NULL = msgspec.Raw(b"null")
_KNOWN = frozenset(Metadata.__struct_fields__)
_TIME_FIELDS = ("timestamp", "stage_started_at", "stage_completed_at")
DEFAULT_MAX_DURATION_MS = DEFAULT_MAX_DURATION_DAYS * DAY_MS
DEFAULT_MAX_EVENT_COST_USD = 1000.0
"""Default of the ``max_event_cost_usd`` setting."""


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


class Checked(NamedTuple):
    """A valid item: the event to store and, when something was dropped from it (a
    duration over the maximum), a warning naming the field. A tuple: one is built per
    ingested item, and a frozen dataclass costs several times as much to build."""

    event: Event
    warning: FieldError | None = None


WARNING_REASON = "duration_over_max"
"""The one warning so far: ``voxmon_ingest_warnings_total{reason="duration_over_max"}``."""


def validate_items(
    items: Sequence[bytes | msgspec.Raw],
    now_ms: int,
    horizon: Horizon,
    max_duration_ms: int = DEFAULT_MAX_DURATION_MS,
    max_cost_usd: float = DEFAULT_MAX_EVENT_COST_USD,
) -> tuple[list[Event], list[Rejection], list[ItemWarning]]:
    """Validate raw JSON items; returns accepted events (request order), rejections and
    warnings about accepted items (both carry the item's index in the request)."""
    events: list[Event] = []
    rejections: list[Rejection] = []
    warnings: list[ItemWarning] = []
    for index, raw in enumerate(items):
        try:
            checked = validate_item(raw, now_ms, horizon, max_duration_ms, max_cost_usd)
        except ItemInvalid as exc:
            rejections.append(Rejection(index, _event_id_of(raw), (exc.error,), exc.reason))
            continue
        events.append(checked.event)
        if checked.warning is not None:
            event_id = checked.event.event_id
            warnings.append(ItemWarning(index, event_id, (checked.warning,), WARNING_REASON))
    return events, rejections, warnings


def validate_item(
    raw: bytes | msgspec.Raw,
    now_ms: int,
    horizon: Horizon,
    max_duration_ms: int = DEFAULT_MAX_DURATION_MS,
    max_cost_usd: float = DEFAULT_MAX_EVENT_COST_USD,
) -> Checked:
    """Validate one raw JSON object; raises ``ItemInvalid`` naming the field. A duration
    longer than ``max_duration_ms`` (equal is kept) is dropped with a warning, not rejected;
    an ``ai_cost_usd`` above ``max_cost_usd`` is rejected (a cost cannot be dropped)."""
    wire = _decode(raw)
    event_type = EVENT_TYPES.get(wire.event_type)
    if event_type is None:
        raise ItemInvalid(
            "unknown_event_type", "event_type", f"unknown event type {wire.event_type[:64]!r}"
        )
    ts_ms = _time(wire.timestamp, "timestamp")
    _check_horizon(ts_ms, now_ms, horizon)
    if wire.org_id == OTHER_ORG:
        raise ItemInvalid(
            "invalid_value",
            "org_id",
            f"org_id {OTHER_ORG!r} is reserved for organisations beyond the live caps",
        )
    if event_type.needs_artifact and not wire.artifact_id:
        raise ItemInvalid(
            "missing_field", "artifact_id", f"artifact_id is required for {event_type.name}"
        )
    duration, source, warning = _duration(wire, ts_ms, max_duration_ms)
    metadata, metadata_json = _metadata(wire.metadata) if wire.metadata else (None, None)
    if metadata is not None and (metadata.ai_cost_usd or 0.0) > max_cost_usd:
        raise ItemInvalid(
            "invalid_value",
            "metadata.ai_cost_usd",
            f"ai_cost_usd is {metadata.ai_cost_usd:g}; at most {max_cost_usd:g} per event"
            " (max_event_cost_usd)",
        )
    event = Event(
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
        metadata=metadata,
        metadata_json=metadata_json,
    )
    return Checked(event, warning)


def _decode(raw: bytes | msgspec.Raw) -> WireEvent:
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise _from_validation_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ItemInvalid("invalid_json", "", f"item is not valid JSON: {exc}") from None
    except RecursionError:  # only metadata values are untyped, so only they can nest
        raise _metadata_too_large(f"nested more than {MAX_METADATA_DEPTH} levels") from None


def _from_validation_error(text: str, within: str = "") -> ItemInvalid:
    """The msgspec error as an ``ItemInvalid``; ``within`` prefixes the path (a nested
    decode). Paths into untyped metadata values (``metadata[...]``) name ``metadata``."""
    match = _PATH.search(text)
    path = match.group(1) if match else ""
    message = text[: match.start()] if match else text
    if within:
        path = within + ("." if path and not path.startswith("[") else "") + path
    if path.startswith("metadata["):
        path = "metadata"
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


_Duration = tuple[float | None, str | None, FieldError | None]


def _duration(wire: WireEvent, ts_ms: int, max_ms: int) -> _Duration:
    """Precedence rule, first two steps (DESIGN §2); the event-based steps need storage.
    Returns (duration, source, warning); over ``max_ms`` the duration is dropped."""
    end_ms = ts_ms
    if wire.stage_completed_at is not None:
        end_ms = _time(wire.stage_completed_at, "stage_completed_at")
    if wire.duration_ms is not None:
        if wire.duration_ms <= max_ms:  # the usual case, without a call
            return wire.duration_ms, DurationSource.GIVEN, None
        return _bounded(wire.duration_ms, DurationSource.GIVEN, max_ms)
    if wire.stage_started_at is None:
        return None, None, None
    start_ms = _time(wire.stage_started_at, "stage_started_at")
    duration = end_ms - start_ms
    if duration < 0:
        raise ItemInvalid(
            "negative_duration",
            "stage_started_at",
            f"stage_started_at is {-duration} ms after the stage's end; duration must be >= 0",
        )
    return _bounded(float(duration), DurationSource.STAGE_TIMES, max_ms)


def _bounded(duration: float, source: str, max_ms: int) -> _Duration:
    if duration <= max_ms:
        return duration, source, None
    given = "duration_ms" if source == DurationSource.GIVEN else "the stage times"
    shown = f"{duration:.3f}".rstrip("0").rstrip(".")
    message = (
        f"duration from {given} is {shown} ms, over max_duration_days"
        f" ({max_ms / DAY_MS:g} days, {max_ms} ms); the event is stored without a duration"
    )
    return None, DurationSource.OVER_MAX, FieldError("duration_ms", message)


def _metadata(raw: msgspec.Raw) -> tuple[Metadata | None, str | None]:
    """Known keys validated as ``Metadata``; the whole object (unknown keys too, any JSON
    values) bounded and kept as sent for storage (empty ``raw``: no metadata sent)."""
    if raw == _NULL:
        return None, None
    if len(raw) > MAX_METADATA_BYTES:
        raise _metadata_too_large(f"is {len(raw)} bytes; at most {MAX_METADATA_BYTES}")
    text = bytes(raw)
    try:  # the usual case, known keys only: one decode checks everything
        return _known_metadata.decode(text), text.decode()
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        pass  # unknown keys, or an error the checks below name precisely
    try:
        values = _open_metadata.decode(text)  # checks every value: UTF-8, number range
        _check_shape(values)
        known = msgspec.convert({k: v for k, v in values.items() if k in _KNOWN}, Metadata)
    except msgspec.ValidationError as exc:
        raise _from_validation_error(str(exc), "metadata") from None
    except msgspec.DecodeError as exc:
        raise ItemInvalid("invalid_json", "metadata", f"metadata: {exc}") from None
    except RecursionError:
        raise _metadata_too_large(f"nested more than {MAX_METADATA_DEPTH} levels") from None
    return known, text.decode()  # valid UTF-8: the decoder above checked every string


def _check_shape(values: OpenMetadata) -> None:
    """Key count, key length and nesting bounds (after the size bound: the walk is short)."""
    if len(values) > MAX_METADATA_KEYS:
        raise _metadata_too_large(f"has {len(values)} keys; at most {MAX_METADATA_KEYS}")
    longest = max(values, key=len, default="")
    if len(longest) > MAX_METADATA_KEY_CHARS:
        raise _metadata_too_large(
            f"key {longest[:32]!r}... has {len(longest)} characters;"
            f" at most {MAX_METADATA_KEY_CHARS}"
        )
    if any(_nested_deeper(value, MAX_METADATA_DEPTH) for value in values.values()):
        raise _metadata_too_large(f"nested more than {MAX_METADATA_DEPTH} levels")


def _nested_deeper(value: object, levels: int) -> bool:
    """Whether ``value`` has containers nested more than ``levels`` deep."""
    if isinstance(value, dict):
        children: Iterable[object] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    return levels == 0 or any(_nested_deeper(child, levels - 1) for child in children)


def _metadata_too_large(problem: str) -> ItemInvalid:
    return ItemInvalid("metadata_too_large", "metadata", f"metadata {problem}")


def _event_id_of(raw: bytes | msgspec.Raw) -> str | None:
    try:
        obj = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    value = obj.get("event_id") if isinstance(obj, dict) else None
    return value[:128] if isinstance(value, str) else None
