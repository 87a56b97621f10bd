"""In-memory index of in-flight notes behind the in-flight, stuck and disambiguation
gauges; restored from the artifact table at start, updated from committed states."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from exporter.artifacts import IN_FLIGHT


class NoteState(Protocol):
    """What the index reads of a note's state (``ArtifactState``, or a journal entry's
    ``InflightChange`` from another replica)."""

    @property
    def artifact_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def current_stage(self) -> str | None: ...
    @property
    def last_event_ms(self) -> int: ...
    @property
    def awaiting_disambiguation(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Entry:
    stage: str
    last_event_ms: int
    awaiting: bool


class InflightIndex:
    """Notes whose status is in flight, by id. Memory is bounded by event retention:
    entries whose last event is older than it are dropped, as their rows are."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def apply(self, states: Iterable[NoteState]) -> None:
        for state in states:
            if state.status == IN_FLIGHT:
                self._entries[state.artifact_id] = _Entry(
                    state.current_stage or "", state.last_event_ms, state.awaiting_disambiguation
                )
            else:
                self._entries.pop(state.artifact_id, None)

    def by_stage(self) -> Counter[str]:
        """In-flight notes per current stage."""
        return Counter(entry.stage for entry in self._entries.values())

    def stuck(self, before_ms: int) -> int:
        """In-flight notes with no event since ``before_ms`` (strictly before)."""
        return sum(1 for entry in self._entries.values() if entry.last_event_ms < before_ms)

    def awaiting_disambiguation(self) -> int:
        return sum(1 for entry in self._entries.values() if entry.awaiting)

    def prune(self, before_ms: int) -> None:
        """Forget notes whose last event is older than event retention."""
        for artifact_id in [k for k, e in self._entries.items() if e.last_event_ms < before_ms]:
            del self._entries[artifact_id]
