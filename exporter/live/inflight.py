"""In-memory index of in-flight notes behind the in-flight, stuck and disambiguation
gauges; restored from the artifact table at start, updated from committed states.

Compact: one small int per note (last event time, stage code and the awaiting flag packed
together) under its id, and the per-stage and awaiting counts kept as notes change, so a
scrape reads them in O(1); only ``stuck`` looks at every note (a comparison of ints)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from exporter.artifacts import IN_FLIGHT

_SHIFT = 8
"""Low bits of a packed entry: the stage code (7 bits) and the awaiting flag (bit 0)."""


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


class InflightIndex:
    """Notes whose status is in flight, by id. Memory is bounded by event retention:
    entries whose last event is older than it are dropped, as their rows are."""

    def __init__(self) -> None:
        self._entries: dict[str, int] = {}
        self._codes: dict[str, int] = {}
        self._stages: list[str] = []
        self._per_code: Counter[int] = Counter()
        self._awaiting = 0

    def __len__(self) -> int:
        return len(self._entries)

    def apply(self, states: Iterable[NoteState]) -> None:
        for state in states:
            if state.status == IN_FLIGHT:
                self.put(
                    state.artifact_id,
                    state.current_stage,
                    state.last_event_ms,
                    state.awaiting_disambiguation,
                )
            else:
                self._forget(state.artifact_id)

    def load(self, rows: Iterable[tuple[str, str | None, int, bool]]) -> None:
        """Add in-flight notes as ``(artifact_id, current_stage, last_event_ms, awaiting)``
        (a restore streams them from the artifact table)."""
        if self._entries:
            for artifact_id, stage, last_ms, awaiting in rows:
                self.put(artifact_id, stage, last_ms, awaiting)
            return
        entries, codes, code_of = self._entries, self._codes, self._code  # the restore path
        for artifact_id, stage, last_ms, awaiting in rows:
            code = codes.get(stage or "")
            if code is None:
                code = code_of(stage or "")
            entries[artifact_id] = last_ms << _SHIFT | code << 1 | (1 if awaiting else 0)
        self._per_code = Counter((packed >> 1) & 0x7F for packed in entries.values())
        self._awaiting = sum(packed & 1 for packed in entries.values())

    def put(self, artifact_id: str, stage: str | None, last_ms: int, awaiting: bool) -> None:
        self._forget(artifact_id)
        code = self._code(stage or "")
        self._entries[artifact_id] = last_ms << _SHIFT | code << 1 | int(bool(awaiting))
        self._per_code[code] += 1
        self._awaiting += bool(awaiting)

    def by_stage(self) -> Counter[str]:
        """In-flight notes per current stage."""
        return Counter({self._stages[code]: n for code, n in self._per_code.items() if n})

    def stuck(self, before_ms: int) -> int:
        """In-flight notes with no event since ``before_ms`` (strictly before)."""
        limit = before_ms << _SHIFT
        return sum(1 for packed in self._entries.values() if packed < limit)

    def awaiting_disambiguation(self) -> int:
        return self._awaiting

    def prune(self, before_ms: int) -> None:
        """Forget notes whose last event is older than event retention."""
        limit = before_ms << _SHIFT
        for artifact_id in [k for k, packed in self._entries.items() if packed < limit]:
            self._forget(artifact_id)

    def _forget(self, artifact_id: str) -> None:
        packed = self._entries.pop(artifact_id, None)
        if packed is not None:
            self._per_code[(packed >> 1) & 0x7F] -= 1
            self._awaiting -= packed & 1

    def _code(self, stage: str) -> int:
        code = self._codes.get(stage)
        if code is None:
            if len(self._stages) > 0x7F:
                raise ValueError(f"more than 128 stages in flight (at {stage!r})")
            code = self._codes[stage] = len(self._stages)
            self._stages.append(stage)
        return code
