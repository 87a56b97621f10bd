"""Realistic demo traffic for ``voxmon demo``: voice notes travel through the pipeline with
lognormal stage latencies, failures, retries, disambiguation, per-model AI cost, coach review,
and a small share of late and duplicate deliveries. Pure: a seeded random, simulated seconds."""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from exporter.catalog import (
    ARTIFACT_RECEIVED,
    DISAMBIGUATION_TYPE,
    EVENT_TYPES,
    PROCESSING_STAGES,
    STARTED_TYPE,
    Kind,
)
from exporter.demo.shape import RATE_LIMITED, DemoConfig, StageProfile


def _of_kind(kind: Kind, stage: str | None = None) -> tuple[str, ...]:
    """Catalog event types of one kind (and stage), in catalog order."""
    return tuple(t.name for t in EVENT_TYPES.values() if t.kind is kind and t.stage == stage)


(ARTIFACT_COMPLETED,) = _of_kind(Kind.ARTIFACT_SUCCESS)
(ARTIFACT_FAILED,) = _of_kind(Kind.ARTIFACT_FAILURE)
RETRY_INITIATED, RETRY_SUCCEEDED, RETRY_FAILED = _of_kind(Kind.RETRY)
DRAFT_CONFIRMED, DRAFT_REJECTED = _of_kind(Kind.OUTCOME, "confirmation")
BUDGET_THRESHOLD, _BUDGET_EXCEEDED, RATE_LIMIT_HIT = _of_kind(Kind.COST)
SUCCESS = {s: _of_kind(Kind.SUCCESS, s)[0] for s in PROCESSING_STAGES}
FAILURE = {s: _of_kind(Kind.FAILURE, s)[0] for s in PROCESSING_STAGES}


@dataclass(frozen=True, slots=True)
class Emission:
    """One event to emit ``at`` seconds into the run, stamped ``lag_s`` earlier."""

    at: float
    lag_s: float
    event_type: str
    fields: dict[str, Any]
    duplicate: bool = False


@dataclass(slots=True)
class _Note:
    artifact_id: str
    org_id: str
    coach: str
    t0: float
    lag_s: float
    stages: tuple[str, ...]
    drafts: int = 0


class Simulation:
    """Discrete-event simulation of the pipeline. ``emissions(until)`` yields events in
    time order; ``counts`` tallies what was emitted (``events``, ``duplicates``, ``notes``,
    ``started:<stage>``, ``failed:<stage>``, ``succeeded:<stage>``, ``finished:<type>`` for
    artifact_completed and artifact_failed)."""

    def __init__(self, config: DemoConfig, rng: random.Random) -> None:
        self.config, self.rng = config, rng
        self.counts: Counter[str] = Counter()
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._out: list[Emission] = []
        self._orgs = [f"org-{i + 1:02d}" for i in range(config.orgs)]
        self._weights = [1 / (i + 1) for i in range(config.orgs)]
        self._spend: dict[str, float] = {}
        self._closed = False
        self._at(rng.expovariate(config.rate), self._arrive)

    def emissions(self, until: float | None = None) -> Iterator[Emission]:
        """Events in time order up to ``until`` seconds (exclusive); None runs forever."""
        while self._heap and (until is None or self._heap[0][0] < until):
            self.now, _, action = heapq.heappop(self._heap)
            action()
            yield from self._out
            self._out.clear()

    def drain(self) -> Iterator[Emission]:
        """No note arrives any more; the rest of every note already started (each ends in
        ``artifact_completed`` or ``artifact_failed``, then its review), in time order."""
        self._closed = True
        yield from self.emissions(None)

    @property
    def in_flight(self) -> int:
        """Notes received and not yet completed or failed."""
        c = self.counts
        return c["notes"] - c["finished:artifact_completed"] - c["finished:artifact_failed"]

    def _at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), action))

    def _lognormal(self, median: float, sigma: float) -> float:
        return self.rng.lognormvariate(math.log(median), sigma)

    def _emit(self, note: _Note | None, event_type: str, org_id: str, **fields: Any) -> None:
        fields["event_id"] = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        fields["org_id"] = org_id
        if note is not None:
            fields["artifact_id"] = note.artifact_id
        duplicate = self.rng.random() < self.config.duplicate_share
        lag = note.lag_s if note else 0.0
        self._out.append(Emission(self.now, lag, event_type, fields, duplicate))
        self.counts["events"] += 1
        self.counts["duplicates"] += duplicate
        if event_type in (ARTIFACT_COMPLETED, ARTIFACT_FAILED):
            self.counts[f"finished:{event_type}"] += 1

    def _arrive(self) -> None:
        if self._closed:
            return
        cfg, rng = self.config, self.rng
        self._at(self.now + rng.expovariate(cfg.rate), self._arrive)
        org = rng.choices(self._orgs, self._weights)[0]
        text = rng.random() < cfg.text_share
        lag = rng.uniform(*cfg.late_s) if rng.random() < cfg.late_share else 0.0
        stages = PROCESSING_STAGES[1:] if text else PROCESSING_STAGES
        note = _Note(
            f"note-{rng.getrandbits(48):012x}",
            org,
            f"coach-{org}-{rng.randint(1, 4)}",
            self.now,
            lag,
            stages,
        )
        self.counts["notes"] += 1
        channel = "web" if text else rng.choice(("ios", "android"))
        self._emit(
            note,
            ARTIFACT_RECEIVED,
            org,
            coach_user_id=note.coach,
            voice_note_id=note.artifact_id,
            metadata={"source_channel": channel},
        )
        self._at(self.now + self._lognormal(0.3, 0.5), lambda: self._start(note, 0, 0))

    def _start(self, note: _Note, index: int, attempt: int) -> None:
        stage = note.stages[index]
        profile = self.config.profiles[stage]
        self.counts[f"started:{stage}"] += 1
        self._emit(note, STARTED_TYPE[stage], note.org_id, **_attempt(attempt))
        latency_ms = self._lognormal(profile.median_ms, profile.sigma)
        self._at(
            self.now + latency_ms / 1000, lambda: self._finish(note, index, attempt, latency_ms)
        )

    def _finish(self, note: _Note, index: int, attempt: int, latency_ms: float) -> None:
        stage = note.stages[index]
        profile = self.config.profiles[stage]
        if self.rng.random() < profile.failure_p:
            self._fail(note, index, attempt, latency_ms)
            return
        self.counts[f"succeeded:{stage}"] += 1
        event_type, metadata, next_delay, units = self._outcome(note, stage)
        metadata.update(self._cost(note, profile, units))
        metadata.update(_attempt(attempt).get("metadata", {}))
        self._emit(note, event_type, note.org_id, duration_ms=latency_ms, metadata=metadata)
        if attempt:
            self._emit(note, RETRY_SUCCEEDED, note.org_id, stage=stage, **_attempt(attempt))
        if index + 1 < len(note.stages):
            self._at(self.now + next_delay, lambda: self._start(note, index + 1, 0))
            return
        self._emit(note, ARTIFACT_COMPLETED, note.org_id, duration_ms=(self.now - note.t0) * 1000)
        self._at(self.now + self._lognormal(60, 0.6), lambda: self._review(note))

    def _fail(self, note: _Note, index: int, attempt: int, latency_ms: float) -> None:
        cfg, stage = self.config, note.stages[index]
        self.counts[f"failed:{stage}"] += 1
        error = self.rng.choice(cfg.profiles[stage].errors)
        self._emit(
            note,
            FAILURE[stage],
            note.org_id,
            duration_ms=latency_ms,
            error_code=error,
            error_message=f"{stage} failed: {error}",
            **_attempt(attempt),
        )
        if error == RATE_LIMITED:
            self._emit(None, RATE_LIMIT_HIT, note.org_id)
        if attempt < cfg.max_retries and self.rng.random() < cfg.retry_p:
            self._emit(note, RETRY_INITIATED, note.org_id, stage=stage, **_attempt(attempt + 1))
            delay = self._lognormal(2.0 * 2**attempt, 0.3)
            self._at(self.now + delay, lambda: self._start(note, index, attempt + 1))
            return
        if attempt:
            self._emit(note, RETRY_FAILED, note.org_id, stage=stage, **_attempt(attempt))
        self._emit(
            note,
            ARTIFACT_FAILED,
            note.org_id,
            error_code=error,
            duration_ms=(self.now - note.t0) * 1000,
        )

    def _outcome(self, note: _Note, stage: str) -> tuple[str, dict[str, Any], float, float]:
        """Success type, stage metadata, seconds until the next stage starts, and billed
        units (audio minutes for transcription, thousands of tokens otherwise)."""
        rng, handoff, tokens_k = self.rng, self._lognormal(0.2, 0.5), self._lognormal(3, 0.5)
        if stage == "transcription":
            audio_s = self._lognormal(45, 0.6)
            return (
                SUCCESS[stage],
                {
                    "transcript_duration_s": round(audio_s, 1),
                    "transcript_word_count": int(audio_s * rng.uniform(2.0, 2.8)),
                    "confidence": round(rng.betavariate(18, 2), 3),
                },
                handoff,
                audio_s / 60,
            )
        if stage == "claims_extraction":
            claims = {
                "claim_count": rng.randint(1, 8),
                "confidence": round(rng.betavariate(8, 2), 3),
            }
            return SUCCESS[stage], claims, handoff, tokens_k
        if stage == "entity_resolution":
            entities = rng.randint(1, 10)
            unsure = rng.randint(1, entities) if rng.random() < self.config.disambiguation_p else 0
            counts = {
                "entity_count": entities,
                "auto_resolved_count": entities - unsure,
                "disambiguation_count": unsure,
            }
            if unsure:  # a coach picks the right entities before drafting goes on
                return DISAMBIGUATION_TYPE, counts, self._lognormal(20, 0.5), 0.0
            return SUCCESS[stage], counts, handoff, 0.0
        note.drafts = rng.randint(1, 3)
        return SUCCESS[stage], {"draft_count": note.drafts}, handoff, tokens_k

    def _cost(self, note: _Note, profile: StageProfile, units: float) -> dict[str, Any]:
        """The model called and its cost; crossing a budget step reports it."""
        if not profile.models:
            return {}
        model, price = self.rng.choice(profile.models)
        cost = round(units * price, 6)
        step, before = self.config.budget_step_usd, self._spend.get(note.org_id, 0.0)
        self._spend[note.org_id] = before + cost
        if int(before / step) < int((before + cost) / step):
            self._emit(None, BUDGET_THRESHOLD, note.org_id)
        return {"ai_model": model, "ai_cost_usd": cost}

    def _review(self, note: _Note) -> None:
        for _ in range(note.drafts):
            outcome = (
                DRAFT_CONFIRMED if self.rng.random() < self.config.confirm_p else DRAFT_REJECTED
            )
            self._emit(note, outcome, note.org_id, coach_user_id=note.coach)


def _attempt(attempt: int) -> dict[str, Any]:
    return {"metadata": {"retry_attempt": attempt}} if attempt else {}
