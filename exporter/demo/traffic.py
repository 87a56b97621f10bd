"""Realistic demo traffic for ``voxmon demo``: voice notes travel through the pipeline with
lognormal stage latencies, failures, retries, disambiguation, per-model AI cost, coach review,
and a small share of late and duplicate deliveries. ``Simulation`` is pure (a seeded random
and simulated seconds); ``run`` paces it on a ``Clock`` and emits through the client."""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import sys
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from exporter import demodaemon
from exporter.catalog import (
    ARTIFACT_RECEIVED,
    DISAMBIGUATION_TYPE,
    EVENT_TYPES,
    PROCESSING_STAGES,
    STARTED_TYPE,
    Kind,
)
from exporter.client import Emitter
from exporter.clock import Clock, SystemClock
from exporter.settings import Settings


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
RATE_LIMITED = "RateLimitError"
"""Error code of stage failures that also report ``rate_limit_hit``."""


@dataclass(frozen=True, slots=True)
class StageProfile:
    """One processing stage: lognormal latency (median ms, shape sigma), the probability
    that one attempt fails, its error codes, and the AI models it may call with their price
    in USD per unit (an audio minute for transcription, 1,000 tokens otherwise)."""

    median_ms: float
    sigma: float
    failure_p: float
    errors: tuple[str, ...]
    models: tuple[tuple[str, float], ...] = ()


DEFAULT_PROFILES: Mapping[str, StageProfile] = {
    "transcription": StageProfile(
        3500,
        0.5,
        0.05,
        ("AudioDecodeError", "TranscriptionTimeout"),
        (("whisper-large-v3", 0.006),),
    ),
    "claims_extraction": StageProfile(
        2200,
        0.45,
        0.03,
        ("ClaimsParseError", RATE_LIMITED),
        (("gpt-4o-mini", 0.0006), ("gpt-4o", 0.01)),
    ),
    "entity_resolution": StageProfile(700, 0.6, 0.02, ("EntityIndexUnavailable",)),
    "draft_generation": StageProfile(
        5000,
        0.5,
        0.08,
        ("DraftModelTimeout", "ContentFilterError", RATE_LIMITED),
        (("claude-sonnet", 0.015), ("gpt-4o", 0.01)),
    ),
}


DEFAULT_RATE = 5.0
DEFAULT_ORGS = 5


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Traffic shape. ``rate`` is new voice notes per second; times are seconds."""

    rate: float = DEFAULT_RATE
    orgs: int = DEFAULT_ORGS
    profiles: Mapping[str, StageProfile] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    text_share: float = 0.2
    """Notes typed rather than spoken: they skip transcription."""
    retry_p: float = 0.7
    max_retries: int = 2
    disambiguation_p: float = 0.15
    confirm_p: float = 0.85
    late_share: float = 0.02
    """Notes delivered ``late_s`` after they happened (a worker flushing a backlog)."""
    late_s: tuple[float, float] = (120.0, 600.0)
    duplicate_share: float = 0.01
    """Events delivered twice with the same event_id (an at-least-once queue)."""
    budget_step_usd: float = 1.0
    """Each org reports ``budget_threshold_reached`` whenever its spend crosses a multiple."""

    def with_failures(self, failures: Mapping[str, float]) -> DemoConfig:
        profiles = {
            s: replace(p, failure_p=failures.get(s, p.failure_p)) for s, p in self.profiles.items()
        }
        return replace(self, profiles=profiles)


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
    ``started:<stage>``, ``failed:<stage>``, ``succeeded:<stage>``)."""

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
        self._at(rng.expovariate(config.rate), self._arrive)

    def emissions(self, until: float | None = None) -> Iterator[Emission]:
        """Events in time order up to ``until`` seconds (exclusive); None runs forever."""
        while self._heap and (until is None or self._heap[0][0] < until):
            self.now, _, action = heapq.heappop(self._heap)
            action()
            yield from self._out
            self._out.clear()

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

    def _arrive(self) -> None:
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


Emit = Callable[..., str]
Wait = Callable[[float], bool]
"""Sleep for so many seconds; True means stop now (``threading.Event.wait``)."""


def run(
    simulation: Simulation,
    emit: Emit,
    clock: Clock,
    wait: Wait,
    duration_s: float | None = None,
    progress: Callable[[float], None] | None = None,
    every_s: float = 10.0,
) -> None:
    """Emit the simulation's events in real time on ``clock`` for ``duration_s`` seconds
    (None: until ``wait`` says stop). Timestamps are the run's start wall time plus each
    event's offset, minus its lateness. With a ``FakeClock`` and a ``wait`` that advances
    it, a long run takes no wall time (tests)."""
    start_mono, start_wall = clock.monotonic(), clock.now()
    next_report = every_s
    for item in simulation.emissions(duration_s):
        ahead = start_mono + item.at - clock.monotonic()
        if ahead > 0 and wait(ahead):
            return
        fields = {**item.fields, "timestamp": start_wall + timedelta(seconds=item.at - item.lag_s)}
        emit(item.event_type, **fields)
        if item.duplicate:
            emit(item.event_type, **fields)
        if progress is not None and item.at >= next_report:
            progress(item.at)
            next_report += every_s


def add_parser(commands: Any) -> None:
    """The ``demo`` subcommand (``commands`` is the CLI's subparsers object)."""
    demo = commands.add_parser(
        "demo",
        help="send realistic pipeline traffic to a running voxmon",
        description="Voice notes flow through the stages with lognormal latencies, failures,"
        " retries, disambiguation, AI cost, late and duplicate deliveries.",
    )
    where = demo.add_mutually_exclusive_group()
    where.add_argument("--url", help="voxmon base URL (default: from host and port settings)")
    where.add_argument(
        "--serve",
        action="store_true",
        help="run voxmon serve beside the generator (make demo); stop when it exits",
    )
    demo.add_argument("--rate", type=_positive, default=DEFAULT_RATE, help="notes per second")
    demo.add_argument("--orgs", type=int, default=DEFAULT_ORGS, help="organisations")
    demo.add_argument("--duration", type=_positive, help="seconds to run (default: until ^C)")
    demo.add_argument("--token", help="bearer token with the ingest scope")
    demo.add_argument("--seed", type=int, help="random seed, for a reproducible run")
    demo.add_argument(
        "--failure",
        action="append",
        type=_failure,
        default=[],
        metavar="STAGE=P",
        help="failure probability of one stage attempt",
    )


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _failure(text: str) -> tuple[str, float]:
    stage, _, p = text.partition("=")
    if stage not in PROCESSING_STAGES:
        raise argparse.ArgumentTypeError(f"stage must be one of {', '.join(PROCESSING_STAGES)}")
    try:
        probability = float(p)
    except ValueError:
        probability = -1.0
    if not 0 <= probability <= 1:
        raise argparse.ArgumentTypeError(f"{text}: probability must be in [0, 1]")
    return stage, probability


def _wait_ready(url: str, stop: threading.Event, timeout_s: float = 30.0) -> bool:
    """Poll ``/readyz`` (``make demo`` starts the daemon and the generator together)."""
    for _ in range(int(timeout_s / 0.2)):
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/readyz", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            if stop.wait(0.2):
                break
    return False


def command(args: argparse.Namespace, settings: Settings) -> int:
    """``voxmon demo``: run until ``--duration`` or Ctrl-C, then flush and report; with
    ``--serve``, beside a daemon of its own that ends the run if it exits."""
    if not args.serve:
        return _generate(args, settings, threading.Event())

    def generate(stop: threading.Event) -> int:
        return _generate(args, settings, stop)

    return demodaemon.run_beside(settings, args.config, SystemClock(), generate)


def _generate(args: argparse.Namespace, settings: Settings, stop: threading.Event) -> int:
    """Send until ``--duration``, Ctrl-C or ``stop``, then flush and report."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    url = args.url or f"http://{host}:{settings.port}"
    config = DemoConfig(rate=args.rate, orgs=max(1, args.orgs)).with_failures(dict(args.failure))
    emitter = Emitter(url, token=args.token, capacity=100_000)
    clock = SystemClock()

    def report(at: float) -> None:
        s = emitter.stats()
        print(
            f"demo t={at:5.0f}s emitted={s.emitted} accepted={s.accepted} dup={s.duplicates}"
            f" rejected={s.rejected} dropped={s.dropped} pending={s.pending}",
            file=sys.stderr,
        )

    print(f"demo: {config.rate:g} notes/s across {config.orgs} orgs -> {url}", file=sys.stderr)
    interrupted = False
    try:
        if not _wait_ready(url, stop) and not stop.is_set():
            print("demo: voxmon is not ready; sending anyway (the client retries)", file=sys.stderr)
        run(Simulation(config, random.Random(args.seed)), emitter.emit, clock, stop.wait,
            args.duration, report)  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True  # Ctrl-C also stops the daemon under `make demo`: don't linger
    stats = emitter.close(2 if interrupted or stop.is_set() else 10)
    print(f"demo done: {stats}", file=sys.stderr)
    if interrupted:
        return 0
    return 0 if stats.rejected == 0 and stats.abandoned == 0 else 1
