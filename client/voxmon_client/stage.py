"""``emitter.stage(...)``: time one processing stage of one artifact and emit its started
event, then its success or failure event. Holds the client's copy of voxmon's stage events
(the client does not import the daemon; the daemon's tests check it against its catalog)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from voxmon_client.clock import Clock
from voxmon_client.outbox import Fields

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StageEvents:
    """The event types of one processing stage: its start, its (first) success, its failure."""

    started: str
    success: str
    failure: str


STAGE_EVENTS: dict[str, StageEvents] = {
    "transcription": StageEvents(
        "transcription_started", "transcription_completed", "transcription_failed"
    ),
    "claims_extraction": StageEvents(
        "claims_extraction_started", "claims_extracted", "claims_extraction_failed"
    ),
    "entity_resolution": StageEvents(
        "entity_resolution_started", "entity_resolution_completed", "entity_resolution_failed"
    ),
    "draft_generation": StageEvents(
        "draft_generation_started", "drafts_generated", "draft_generation_failed"
    ),
}
"""voxmon's processing stages, in pipeline order (its catalog, section 3 of the contract)."""


class _Emits(Protocol):
    """What a stage needs of its emitter."""

    @property
    def clock(self) -> Clock: ...

    def emit(self, event_type: str, **fields: Any) -> str: ...


class Stage:
    """``with emitter.stage(artifact_id, "transcription") as s:`` emits the stage's started
    event, then on exit its success event (``s.success_type`` picks another success type of
    the stage, e.g. ``entity_needs_disambiguation``) or, if the block raised, its failure
    event with ``error_code`` = the exception's type name; the exception propagates. The
    finishing event carries ``duration_ms`` (monotonic clock) and ``s.metadata`` (seeded by
    a ``metadata=`` argument); other fields given to ``stage()`` go on all events. An
    unknown stage is logged and the block runs uninstrumented: it never breaks the caller."""

    def __init__(self, emitter: _Emits, artifact_id: str, stage: str, fields: Fields) -> None:
        self.metadata: dict[str, Any] = dict(fields.pop("metadata", None) or {})
        self._emitter, self._start = emitter, 0.0
        self._fields = {"artifact_id": artifact_id, **fields}
        self._events = STAGE_EVENTS.get(stage)
        self.success_type = self._events.success if self._events else ""
        if self._events is None:
            log.error("voxmon: %r is not a processing stage; stage() will emit nothing", stage)

    def __enter__(self) -> Stage:
        self._start = self._emitter.clock.monotonic()
        if self._events:
            self._emitter.emit(self._events.started, **self._fields)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._events:
            return
        duration_ms = (self._emitter.clock.monotonic() - self._start) * 1000
        fields: Fields = {**self._fields, "duration_ms": duration_ms}
        if self.metadata:
            fields["metadata"] = self.metadata
        if exc_type is None:
            self._emitter.emit(self.success_type, **fields)
            return
        fields["error_code"] = exc_type.__name__[:64]
        message = str(exc)[:2000]
        if message:
            fields["error_message"] = message
        self._emitter.emit(self._events.failure, **fields)
