"""Artifact state read model: where each voice note is, folded from its events.

``advance`` is pure; the ingest writer applies it to every committed event in the same
transaction, so the state never disagrees with the stored events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import msgspec

from exporter.catalog import DISAMBIGUATION_TYPE, EVENT_TYPES, STAGE_ORDER, Kind
from exporter.model import Event

IN_FLIGHT, COMPLETED, FAILED = "in_flight", "completed", "failed"
_REVIVING = (Kind.START, Kind.SUCCESS, Kind.RETRY)
"""Kinds that mean work resumed on a note whose last outcome was a stage failure."""


class ArtifactState(msgspec.Struct, frozen=True, gc=False):
    """One note. ``status``: in_flight, completed (``artifact_completed``) or failed (its
    latest outcome is a stage failure or ``artifact_failed``; a later start, success or
    retry of a stage failure puts it back in flight). Times are epoch ms. A Struct (as
    ``Event``): the writer builds one per note it loads and per note a commit moves."""

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


class _Draft(msgspec.Struct, gc=False):
    """Mutable copy of an ``ArtifactState`` while a commit's events are folded in (one
    object per note rather than one frozen copy per event). Its fields are the state's, in
    the same order: ``of`` and ``freeze`` copy by position."""

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

    @classmethod
    def of(cls, state: ArtifactState) -> _Draft:
        return cls(*msgspec.structs.astuple(state))

    def freeze(self) -> ArtifactState:
        return ArtifactState(*msgspec.structs.astuple(self))


_TERMINAL = (Kind.ARTIFACT_SUCCESS, Kind.ARTIFACT_FAILURE)


def fold(states: Mapping[str, ArtifactState], events: Iterable[Event]) -> dict[str, ArtifactState]:
    """New states of every artifact the events touch, applying them in event-time order."""
    drafts: dict[str, _Draft] = {}
    for event in sorted(events, key=lambda e: e.ts_ms):
        artifact_id = event.artifact_id
        if not artifact_id or not EVENT_TYPES[event.event_type].needs_artifact:
            continue
        draft = drafts.get(artifact_id)
        if draft is None:
            known = states.get(artifact_id)
            draft = _Draft.of(known) if known else _new(event, artifact_id)
            drafts[artifact_id] = draft
        _apply(draft, event)
    return {artifact_id: draft.freeze() for artifact_id, draft in drafts.items()}


def _new(event: Event, artifact_id: str) -> _Draft:
    return _Draft(
        artifact_id, event.org_id, IN_FLIGHT, None, event.event_type, event.ts_ms, event.ts_ms
    )


def _apply(draft: _Draft, event: Event) -> None:
    """One event. An event older than the note's last event only moves the first-seen time
    back, or closes the note if it is ``artifact_completed``/``_failed``."""
    kind = EVENT_TYPES[event.event_type].kind
    draft.first_event_ms = min(draft.first_event_ms, event.ts_ms)
    if event.ts_ms >= draft.last_event_ms:
        draft.awaiting_disambiguation = _awaiting(draft, event)
        draft.org_id = draft.org_id or event.org_id
        draft.current_stage = event.stage or draft.current_stage
        draft.last_event_type = event.event_type
        draft.last_event_ms = event.ts_ms
        if kind is Kind.FAILURE and draft.status != COMPLETED:
            draft.status, draft.failed_stage = FAILED, event.stage
            draft.error_code = event.error_code
        elif kind in _REVIVING and draft.status == FAILED:
            draft.status = IN_FLIGHT
    if kind is Kind.ARTIFACT_SUCCESS:
        draft.status, draft.awaiting_disambiguation = COMPLETED, False
    elif kind is Kind.ARTIFACT_FAILURE and draft.status != COMPLETED:
        draft.status, draft.awaiting_disambiguation = FAILED, False
        draft.failed_stage = draft.failed_stage or draft.current_stage
        draft.error_code = event.error_code or draft.error_code


def _awaiting(draft: _Draft, event: Event) -> bool:
    """Waiting for disambiguation from ``entity_needs_disambiguation`` until the note moves
    on: any event of the same or a later stage clears it."""
    if event.event_type == DISAMBIGUATION_TYPE:
        return True
    if not draft.awaiting_disambiguation or event.stage is None:
        return draft.awaiting_disambiguation
    return STAGE_ORDER[event.stage] < _RESOLUTION_ORDER


_RESOLUTION_ORDER = STAGE_ORDER[EVENT_TYPES[DISAMBIGUATION_TYPE].stage or ""]

MINUTE_MS = 60_000
InflightKey = tuple[int, str, bool]
"""A note in flight as the in-flight table counts it: the minute (start, epoch ms, floored)
of its last event, its current stage ('' before its first stage) and whether it awaits
disambiguation."""


def inflight_key(state: ArtifactState) -> InflightKey | None:
    """Where ``state`` counts in the in-flight table; None when the note is not in flight."""
    if state.status != IN_FLIGHT:
        return None
    ms = state.last_event_ms
    return ms - ms % MINUTE_MS, state.current_stage or "", state.awaiting_disambiguation


def removed_inflight(rows: Iterable[tuple[str, str | None, int, object]]) -> dict[InflightKey, int]:
    """The change to the in-flight table when notes are deleted, from their stored
    ``(status, current_stage, last_event_ms, awaiting_disambiguation)``."""
    delta: Counter[InflightKey] = Counter()
    for status, stage, ms, awaiting in rows:
        if status == IN_FLIGHT:
            delta[ms - ms % MINUTE_MS, stage or "", bool(awaiting)] -= 1
    return dict(delta)


def inflight_delta(
    before: Mapping[str, ArtifactState], after: Mapping[str, ArtifactState]
) -> dict[InflightKey, int]:
    """How the in-flight counts change when the notes in ``after`` replace their states in
    ``before`` (absent: new notes); keys whose changes cancel out are left out."""
    delta: Counter[InflightKey] = Counter()
    for artifact_id, state in after.items():
        old = before.get(artifact_id)
        if old is not None and (key := inflight_key(old)) is not None:
            delta[key] -= 1
        if (key := inflight_key(state)) is not None:
            delta[key] += 1
    return {key: n for key, n in delta.items() if n}
