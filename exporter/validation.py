"""Per-item validation of ingested events: wire decoding, catalog rules, the time horizon.

Each item is validated on its own, so one bad item never sinks a batch; every rejection
names the item's index, the field path and the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import msgspec

from exporter.catalog import EVENT_TYPES, STAGES, EventType
from exporter.live.orgs import OTHER_ORG
from exporter.metadata import metadata_too_large, parse_metadata
from exporter.model import (
    DAY_MS,
    DEFAULT_MAX_DURATION_DAYS,
    MAX_METADATA_DEPTH,
    DurationSource,
    Event,
    FieldError,
    ItemWarning,
    Rejection,
    WireEvent,
)
from exporter.rejections import ItemInvalid, from_validation_error
from exporter.timestamps import TimestampError, check_range, datetime_to_ms

_decoder = msgspec.json.Decoder(WireEvent)
DEFAULT_MAX_DURATION_MS = DEFAULT_MAX_DURATION_DAYS * DAY_MS
DEFAULT_MAX_EVENT_COST_USD = 1000.0
"""Default of the ``max_event_cost_usd`` setting."""


@dataclass(frozen=True, slots=True)
class Horizon:
    """Accepted event times: no more than ``future_ms`` ahead of now, no more than
    ``past_ms`` behind it (the late-event horizon, equal to event retention)."""

    future_ms: int = 5 * 60_000
    past_ms: int = 48 * 3_600_000


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
    event_type = _known_type(wire.event_type)
    ts_ms = _time(wire.timestamp, "timestamp")
    _check_horizon(ts_ms, now_ms, horizon)
    _check_ids(wire, event_type)
    duration, source, warning = _duration(wire, ts_ms, max_duration_ms)
    metadata, metadata_json = (
        parse_metadata(wire.metadata, max_cost_usd) if wire.metadata else (None, None)
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


def _known_type(name: str) -> EventType:
    """The catalog entry for ``name``; ``ItemInvalid`` when voxmon does not know the type."""
    event_type = EVENT_TYPES.get(name)
    if event_type is None:
        raise ItemInvalid("unknown_event_type", "event_type", f"unknown event type {name[:64]!r}")
    return event_type


_IDS = ("event_id", "artifact_id", "org_id", "voice_note_id", "coach_user_id")


_TEXT = (*_IDS, "stage", "previous_status", "new_status", "error_code", "error_message")


def _check_ids(wire: WireEvent, event_type: EventType) -> None:
    for name in _TEXT:  # PostgreSQL text cannot hold U+0000: refused on every backend alike
        if (value := getattr(wire, name)) is not None and "\x00" in value:
            raise ItemInvalid("invalid_value", name, f"{name} must not contain U+0000 (NUL)")
    if _blank(wire):
        name = next(n for n in _IDS if (v := getattr(wire, n)) is not None and v.isspace())
        raise ItemInvalid("invalid_value", name, f"{name} must not be blank")
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


def _blank(wire: WireEvent) -> bool:
    """Whether any identifier is all whitespace (written out: this runs for every item)."""
    return (
        wire.event_id.isspace()
        or (wire.artifact_id is not None and wire.artifact_id.isspace())
        or (wire.org_id is not None and wire.org_id.isspace())
        or (wire.voice_note_id is not None and wire.voice_note_id.isspace())
        or (wire.coach_user_id is not None and wire.coach_user_id.isspace())
    )


def _decode(raw: bytes | msgspec.Raw) -> WireEvent:
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise from_validation_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ItemInvalid("invalid_json", "", f"item is not valid JSON: {exc}") from None
    except RecursionError:  # only metadata values are untyped, so only they can nest
        raise metadata_too_large(f"nested more than {MAX_METADATA_DEPTH} levels") from None


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
    """Precedence rule, first two steps (docs/event-contract.md); the event-based steps
    need storage. Returns (duration, source, warning); over ``max_ms`` the duration is dropped.
    A given -0.0 becomes 0.0: equal to it, but a minimum of both would depend on order."""
    end_ms = ts_ms
    if wire.stage_completed_at is not None:
        end_ms = _time(wire.stage_completed_at, "stage_completed_at")
    if wire.duration_ms is not None:
        if wire.duration_ms <= max_ms:  # the usual case, without a call
            return wire.duration_ms + 0.0, DurationSource.GIVEN, None  # -0.0 stored as 0.0
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


def _event_id_of(raw: bytes | msgspec.Raw) -> str | None:
    try:
        obj = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    value = obj.get("event_id") if isinstance(obj, dict) else None
    return value[:128] if isinstance(value, str) else None
