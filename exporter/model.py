"""The event model: msgspec Structs for the wire format and the validated ``Event``.

Wire Structs enforce types, lengths and ranges and reject unknown fields; the rules that
need the catalog or the clock live in ``validation.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import msgspec

Str64 = Annotated[str, msgspec.Meta(max_length=64)]
Str128 = Annotated[str, msgspec.Meta(max_length=128)]
Id128 = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
"""An identifier: 1 to 128 characters (``validation`` also refuses all-whitespace ones: a
check in Python costs a tenth of a ``pattern`` in the decoder)."""
Str2000 = Annotated[str, msgspec.Meta(max_length=2000)]
MAX_COUNT = 1_000_000_000
"""Bound of the metadata counts: an unbounded integer overflowed SQLite's 64-bit INTEGER
and failed the whole group commit (503 for every request in it, retried for ever)."""
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
MAX_COST_USD = 1_000_000_000.0
"""Absolute wire bound of ``ai_cost_usd``; the configured ``max_event_cost_usd`` (at most
this) decides. Even 10^12 events at this bound sum to a finite float."""
CostUsd = Annotated[float, msgspec.Meta(ge=0, le=MAX_COST_USD)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
DAY_MS = 86_400_000
DEFAULT_MAX_DURATION_DAYS = 30
"""Default of the ``max_duration_days`` setting: longer durations are dropped, not kept."""
WIRE_MAX_DURATION_DAYS = 3650
WIRE_MAX_DURATION_MS = WIRE_MAX_DURATION_DAYS * DAY_MS
"""Absolute bound of ``duration_ms`` on the wire (10 years): anything larger is a per-item
400. Durations over the configured ``max_duration_days`` (at most this) are dropped with a
warning instead, see ``validation.py``."""
DurationMs = Annotated[float, msgspec.Meta(ge=0, le=WIRE_MAX_DURATION_MS)]
MAX_TRANSCRIPT_S = WIRE_MAX_DURATION_DAYS * 86_400
TranscriptSeconds = Annotated[float, msgspec.Meta(ge=0, le=MAX_TRANSCRIPT_S)]
WireTime = datetime | int
"""RFC 3339 (parsed strictly, in C, by msgspec) or integer epoch ms."""
OpenMetadata = dict[str, Any]
"""The ``metadata`` object decoded: known keys (``Metadata``) and any others."""
MAX_METADATA_KEYS = 64
MAX_METADATA_KEY_CHARS = 128
MAX_METADATA_BYTES = 16 * 1024
"""Bound on one event's metadata object as sent (and stored): JSON text, UTF-8 bytes."""
MAX_METADATA_DEPTH = 32
"""Nesting levels allowed below a metadata key (``{"k": [[1]]}`` is 2)."""


class Metadata(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, frozen=True):
    """The known per-event measurements (docs/event-contract.md). Metadata may carry other keys too:
    ``validation.py`` bounds them and they are stored as sent, not decoded here."""

    claim_count: Count | None = None
    entity_count: Count | None = None
    auto_resolved_count: Count | None = None
    disambiguation_count: Count | None = None
    draft_count: Count | None = None
    transcript_word_count: Count | None = None
    retry_attempt: Count | None = None
    confidence: Fraction | None = None
    transcript_duration_s: TranscriptSeconds | None = None
    ai_cost_usd: CostUsd | None = None
    ai_model: Str128 | None = None
    source_channel: Str128 | None = None


class WireEvent(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One item of ``POST /v1/events`` exactly as sent."""

    event_id: Id128
    event_type: str
    timestamp: WireTime
    artifact_id: Id128 | None = None
    org_id: Id128 | None = None
    voice_note_id: Id128 | None = None
    coach_user_id: Id128 | None = None
    stage: str | None = None
    duration_ms: DurationMs | None = None
    stage_started_at: WireTime | None = None
    stage_completed_at: WireTime | None = None
    previous_status: Str64 | None = None
    new_status: Str64 | None = None
    error_code: Str64 | None = None
    error_message: Str2000 | None = None
    metadata: msgspec.Raw = msgspec.Raw()
    """Captured as sent (empty when absent): known keys are decoded into ``Metadata`` and
    the whole object is bounded in ``validation.py``, then stored as sent."""


class DurationSource:
    """How an event's duration was obtained (stored beside it; all but GIVEN are derived)."""

    GIVEN = "duration_ms"
    STAGE_TIMES = "stage_times"
    STARTED_EVENT = "started_event"
    RECEIVED_EVENT = "received_event"
    OVER_MAX = "over_max"
    """A duration was given or derived but exceeded ``max_duration_days``: stored without
    one (this flag keeps the writer from deriving another)."""


class Event(msgspec.Struct, frozen=True, gc=False):
    """A validated event. Times are UTC epoch ms; ``stage`` is normalised from the catalog.

    A Struct, not a frozen dataclass: one is built per ingested item (and again in the
    write transaction for each derived duration), and building a frozen dataclass of these
    16 fields by keyword took 2.8 µs, about a third of validating an item; a Struct about 0.7.
    ``gc=False``: it holds only strings, numbers and a ``Metadata``, so it can be in no cycle.
    """

    event_id: str
    event_type: str
    ts_ms: int
    artifact_id: str | None = None
    org_id: str | None = None
    voice_note_id: str | None = None
    coach_user_id: str | None = None
    stage: str | None = None
    duration_ms: float | None = None
    duration_source: str | None = None
    previous_status: str | None = None
    new_status: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    metadata: Metadata | None = None
    metadata_json: str | None = None
    """The whole metadata object as sent (known and unknown keys, JSON text), stored and
    shown in the timeline; None when the event has no metadata."""

    @property
    def ai_cost_usd(self) -> float:
        """AI cost carried by this event, 0 when absent."""
        if self.metadata is None or self.metadata.ai_cost_usd is None:
            return 0.0
        return self.metadata.ai_cost_usd


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one item: a dotted field path (``metadata.confidence``) and why."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A rejected item: its position in the request, its event_id if readable, the errors,
    and a short machine reason used to label the rejection counter."""

    index: int
    event_id: str | None
    errors: tuple[FieldError, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class ItemWarning:
    """An accepted item that was stored with something dropped (a duration over the
    maximum): same shape as ``Rejection``; ``reason`` labels the warning counter."""

    index: int
    event_id: str | None
    errors: tuple[FieldError, ...]
    reason: str
