"""What a batch of newly accepted events adds to the live state: counter deltas, maxima,
window minute buckets and newly seen organisations.

The same ``Tally`` is written to SQLite in the commit's transaction and then applied in
memory, so the persisted and live numbers never diverge. Organisations are already folded
by the caps (``orgs.py``): per-org counters under their ``org_id`` label value, window
buckets under their live scope, so neither grows with the number of organisations.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from exporter.catalog import EVENT_TYPES, Kind, window_counters_for
from exporter.live.families import (
    AI_COST,
    ARTIFACTS,
    END_TO_END,
    EVENTS,
    LAST_EVENT,
    STAGE_DURATION,
    STAGE_OUTCOMES,
    Family,
    Key,
)
from exporter.live.orgs import OrgLabeller, OrgRegistry
from exporter.live.windows import PLATFORM
from exporter.model import Event
from exporter.timestamps import MINUTE_MS

END_TO_END_SERIES = "end_to_end"
"""Window-digest series of the end-to-end latency (stage series are named by stage)."""

NO_ORG = ""
"""org_id label of events without an organisation in the per-org counters."""

_ARTIFACT_OUTCOME = {
    Kind.ARTIFACT_START: "received",
    Kind.ARTIFACT_SUCCESS: "completed",
    Kind.ARTIFACT_FAILURE: "failed",
}
_STAGE_OUTCOME = {Kind.SUCCESS: "success", Kind.FAILURE: "failure"}


@dataclass(slots=True)
class Tally:
    """Deltas for one commit. Counter keys are ``families.Key``s; ``maxima`` keep
    the largest value; ``minutes`` are ``(scope, minute_ms, counter)``."""

    counters: dict[Key, float] = field(default_factory=dict)
    maxima: dict[Key, float] = field(default_factory=dict)
    minutes: dict[tuple[str, int, str], float] = field(default_factory=dict)
    new_orgs: list[str] = field(default_factory=list)
    """Organisations the in-memory registry does not hold, in arrival order: storage records
    those it has not seen (first-seen order), the registry those it has room for."""
    orgs_added: int = 0
    """How many of ``new_orgs`` storage had not seen before (set when it is saved)."""
    latencies: list[tuple[str, int, float]] = field(default_factory=list)
    """``(series, minute_ms, duration_ms)`` of timed events inside the live window, for the
    window digests (``latency.py``); not persisted: a restart rebuilds them from events."""

    def count(self, key: Key, value: float = 1.0) -> None:
        self.counters[key] = self.counters.get(key, 0.0) + value

    def maximum(self, key: Key, value: float) -> None:
        if value > self.maxima.get(key, float("-inf")):
            self.maxima[key] = value

    def minute(self, scope: str, minute_ms: int, counter: str, value: float) -> None:
        key = (scope, minute_ms, counter)
        self.minutes[key] = self.minutes.get(key, 0.0) + value


def bucket_index(bounds: Sequence[float], seconds: float) -> int:
    """Index of the first histogram bucket whose upper bound holds ``seconds``
    (``len(bounds)``: +Inf)."""
    return bisect_left(bounds, seconds)


@dataclass(frozen=True, slots=True)
class _Profile:
    """What one event of a type counts towards, precomputed from the catalog so the
    per-event work in a commit is a handful of dict updates."""

    events_key: Key
    last_key: Key
    artifact_outcome: str | None
    stage_outcome: str | None
    e2e: bool
    timed_stage: bool
    window_names: tuple[str, ...]


def _profile(name: str) -> _Profile:
    kind = EVENT_TYPES[name].kind
    return _Profile(
        events_key=EVENTS.series(name),
        last_key=LAST_EVENT.series(name),
        artifact_outcome=_ARTIFACT_OUTCOME.get(kind),
        stage_outcome=_STAGE_OUTCOME.get(kind),
        e2e=kind is Kind.ARTIFACT_SUCCESS,
        timed_stage=kind is Kind.SUCCESS,
        window_names=window_counters_for(EVENT_TYPES[name]),
    )


_PROFILES = {name: _profile(name) for name in EVENT_TYPES}


def tally(events: Iterable[Event], window_start_ms: int, orgs: OrgRegistry) -> Tally:
    """Deltas for newly accepted events (duplicates already removed).

    Window buckets are written only for minutes at or after ``window_start_ms`` (older
    events are accepted but outside the live window). ``orgs`` decides each organisation's
    label and live scope; orgs it does not hold are listed in ``new_orgs``.
    """
    result = Tally()
    labeller = OrgLabeller(orgs)
    for event in events:
        profile = _PROFILES[event.event_type]
        labels = labeller(event.org_id) if event.org_id else None
        _count_event(result, event, profile, labels.series if labels else NO_ORG)
        if event.ts_ms >= window_start_ms:
            _count_window(result, event, profile, labels.live if labels else None)
            _window_latency(result, event, profile)
    result.new_orgs = labeller.unregistered
    return result


def _count_event(result: Tally, event: Event, profile: _Profile, org: str) -> None:
    counters = result.counters
    counters[profile.events_key] = counters.get(profile.events_key, 0.0) + 1.0
    result.maximum(profile.last_key, float(event.ts_ms))
    cost = event.ai_cost_usd
    if cost:
        result.count(AI_COST.series(org), cost)
    if profile.artifact_outcome:
        result.count(ARTIFACTS.series(org, profile.artifact_outcome))
        if profile.e2e and event.duration_ms is not None:
            _observe(result, END_TO_END, (), event.duration_ms)
    if profile.stage_outcome and event.stage:
        result.count(STAGE_OUTCOMES.series(event.stage, profile.stage_outcome, org))
        if profile.timed_stage and event.duration_ms is not None:
            _observe(result, STAGE_DURATION, (event.stage,), event.duration_ms)


def _observe(result: Tally, family: Family, labels: Key, duration_ms: float) -> None:
    seconds = duration_ms / 1000.0
    result.count(family.bucket_key(labels, bucket_index(family.buckets, seconds)))
    result.count(family.sum_key(labels), seconds)
    result.count(family.count_key(labels))


def _count_window(result: Tally, event: Event, profile: _Profile, org_scope: str | None) -> None:
    minute_ms = event.ts_ms - event.ts_ms % MINUTE_MS
    cost = event.ai_cost_usd
    minutes = result.minutes
    for scope in (PLATFORM, org_scope) if org_scope else (PLATFORM,):
        for name in profile.window_names:
            key = (scope, minute_ms, name)
            minutes[key] = minutes.get(key, 0.0) + 1.0
        if cost:
            result.minute(scope, minute_ms, "ai_cost_usd", cost)


def _window_latency(result: Tally, event: Event, profile: _Profile) -> None:
    if event.duration_ms is None:
        return
    if profile.e2e:
        series = END_TO_END_SERIES
    elif profile.timed_stage and event.stage:
        series = event.stage
    else:
        return
    result.latencies.append((series, event.ts_ms - event.ts_ms % MINUTE_MS, event.duration_ms))
