"""Artifact state read model: where each voice note is, folded from its events.

``advance`` is pure; the ingest writer applies it to every committed event in the same
transaction, so the state never disagrees with the stored events.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter.catalog import DISAMBIGUATION_TYPE, EVENT_TYPES, STAGE_ORDER, Kind
from exporter.model import Event

IN_FLIGHT, COMPLETED, FAILED = "in_flight", "completed", "failed"
_REVIVING = (Kind.START, Kind.SUCCESS, Kind.RETRY)
"""Kinds that mean work resumed on a note whose last outcome was a stage failure."""


@dataclass(frozen=True, slots=True)
class ArtifactState:
    """One note. ``status``: in_flight, completed (``artifact_completed``) or failed (its
    latest outcome is a stage failure or ``artifact_failed``; a later start, success or
    retry of a stage failure puts it back in flight). Times are epoch ms."""

    artifact_id: str
    org_id: str | None
    status: str
    current_stage: str | None
    last_event_type: str
    last_event_ms: int
    first_event_ms: int
    failed_stage: str | None = None
    error_code: str | None = None
    awaiting_disambiguation: bool = False


def fold(states: Mapping[str, ArtifactState], events: Iterable[Event]) -> dict[str, ArtifactState]:
    """New states of every artifact the events touch, applying them in event-time order."""
    changed: dict[str, ArtifactState] = {}
    for event in sorted(events, key=lambda e: e.ts_ms):
        if not event.artifact_id or not EVENT_TYPES[event.event_type].needs_artifact:
            continue
        current = changed.get(event.artifact_id) or states.get(event.artifact_id)
        changed[event.artifact_id] = advance(current, event)
    return changed


def advance(state: ArtifactState | None, event: Event) -> ArtifactState:
    """State after one event. An event older than the state's last event only moves the
    first-seen time back, or closes the note if it is ``artifact_completed``/``_failed``."""
    assert event.artifact_id
    if state is None:
        state = ArtifactState(
            event.artifact_id, event.org_id, IN_FLIGHT, None, event.event_type,
            event.ts_ms, event.ts_ms,
        )  # fmt: skip
    first = min(state.first_event_ms, event.ts_ms)
    kind = EVENT_TYPES[event.event_type].kind
    if event.ts_ms < state.last_event_ms:
        late = dataclasses.replace(state, first_event_ms=first)
        return _terminal(late, event, kind) if kind in _TERMINAL else late
    moved = dataclasses.replace(
        state,
        org_id=state.org_id or event.org_id,
        current_stage=event.stage or state.current_stage,
        last_event_type=event.event_type,
        last_event_ms=event.ts_ms,
        first_event_ms=first,
        awaiting_disambiguation=_awaiting(state, event),
    )
    if kind in _TERMINAL:
        return _terminal(moved, event, kind)
    if kind is Kind.FAILURE and moved.status != COMPLETED:
        return dataclasses.replace(
            moved, status=FAILED, failed_stage=event.stage, error_code=event.error_code
        )
    if kind in _REVIVING and moved.status == FAILED:
        return dataclasses.replace(moved, status=IN_FLIGHT)
    return moved


_TERMINAL = (Kind.ARTIFACT_SUCCESS, Kind.ARTIFACT_FAILURE)


def _terminal(state: ArtifactState, event: Event, kind: Kind) -> ArtifactState:
    if kind is Kind.ARTIFACT_SUCCESS:
        return dataclasses.replace(state, status=COMPLETED, awaiting_disambiguation=False)
    if state.status == COMPLETED:
        return state
    return dataclasses.replace(
        state,
        status=FAILED,
        failed_stage=state.failed_stage or state.current_stage,
        error_code=event.error_code or state.error_code,
        awaiting_disambiguation=False,
    )


def _awaiting(state: ArtifactState, event: Event) -> bool:
    """Waiting for disambiguation from ``entity_needs_disambiguation`` until the note moves
    on: any event of the same or a later stage clears it."""
    if event.event_type == DISAMBIGUATION_TYPE:
        return True
    if not state.awaiting_disambiguation or event.stage is None:
        return state.awaiting_disambiguation
    resolution = STAGE_ORDER[EVENT_TYPES[DISAMBIGUATION_TYPE].stage or ""]
    return STAGE_ORDER[event.stage] < resolution
