"""What a batch of newly accepted events adds to the live state: counter deltas, maxima,
window minute buckets and newly seen organisations.

The same ``Tally`` is written to SQLite in the commit's transaction and then applied in
memory, so the persisted and live numbers never diverge.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from exporter.catalog import EVENT_TYPES, Kind, window_counters_for
from exporter.model import Event
from exporter.windows import PLATFORM, minute_of

DURATION_BUCKETS_S: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200,
)  # fmt: skip
"""Upper bounds (seconds) of the duration histograms; index len() is +Inf."""

NO_ORG = ""
"""org_id label of events without an organisation in the per-org counters."""

Key = tuple[str, ...]

_ARTIFACT_OUTCOME = {
    Kind.ARTIFACT_START: "received",
    Kind.ARTIFACT_SUCCESS: "completed",
    Kind.ARTIFACT_FAILURE: "failed",
}
_STAGE_OUTCOME = {Kind.SUCCESS: "success", Kind.FAILURE: "failure"}


@dataclass(slots=True)
class Tally:
    """Deltas for one commit. Counter keys are ``(family, *label values)``; ``maxima`` keep
    the largest value; ``minutes`` are ``(scope, minute_ms, counter)``."""

    counters: dict[Key, float] = field(default_factory=dict)
    maxima: dict[Key, float] = field(default_factory=dict)
    minutes: dict[tuple[str, int, str], float] = field(default_factory=dict)
    new_orgs: list[str] = field(default_factory=list)

    def count(self, key: Key, value: float = 1.0) -> None:
        self.counters[key] = self.counters.get(key, 0.0) + value

    def maximum(self, key: Key, value: float) -> None:
        if value > self.maxima.get(key, float("-inf")):
            self.maxima[key] = value

    def minute(self, scope: str, minute_ms: int, counter: str, value: float) -> None:
        key = (scope, minute_ms, counter)
        self.minutes[key] = self.minutes.get(key, 0.0) + value


def bucket_index(seconds: float) -> int:
    """Index of the first histogram bucket whose upper bound holds ``seconds``."""
    for index, bound in enumerate(DURATION_BUCKETS_S):
        if seconds <= bound:
            return index
    return len(DURATION_BUCKETS_S)


def tally(events: Iterable[Event], window_start_ms: int, known_orgs: Container[str]) -> Tally:
    """Deltas for newly accepted events (duplicates already removed).

    Window buckets are written only for minutes at or after ``window_start_ms`` (older
    events are accepted but outside the live window). ``known_orgs`` are orgs already
    registered for the series cap; the rest are listed in ``new_orgs`` in arrival order.
    """
    result = Tally()
    seen: set[str] = set()
    for event in events:
        _count_event(result, event)
        if event.ts_ms >= window_start_ms:
            _count_window(result, event)
        org = event.org_id
        if org and org not in known_orgs and org not in seen:
            seen.add(org)
            result.new_orgs.append(org)
    return result


def _count_event(result: Tally, event: Event) -> None:
    event_type = EVENT_TYPES[event.event_type]
    org = event.org_id or NO_ORG
    result.count(("events_total", event.event_type))
    result.maximum(("last_event_ts", event.event_type), float(event.ts_ms))
    cost = event.ai_cost_usd
    if cost:
        result.count(("ai_cost_usd_total", org), cost)
    if outcome := _ARTIFACT_OUTCOME.get(event_type.kind):
        result.count(("artifacts_total", org, outcome))
    if event_type.kind is Kind.ARTIFACT_SUCCESS and event.duration_ms is not None:
        _observe(result, ("e2e_duration",), event.duration_ms)
    if (outcome := _STAGE_OUTCOME.get(event_type.kind)) and event.stage:
        result.count(("stage_outcomes_total", event.stage, outcome, org))
        if event_type.kind is Kind.SUCCESS and event.duration_ms is not None:
            _observe(result, ("stage_duration", event.stage), event.duration_ms)


def _observe(result: Tally, family: Key, duration_ms: float) -> None:
    seconds = duration_ms / 1000.0
    name, *labels = family
    result.count((f"{name}_bucket", *labels, str(bucket_index(seconds))))
    result.count((f"{name}_sum", *labels), seconds)
    result.count((f"{name}_count", *labels))


def _count_window(result: Tally, event: Event) -> None:
    minute_ms = minute_of(event.ts_ms)
    scopes = (PLATFORM, event.org_id) if event.org_id else (PLATFORM,)
    names = window_counters_for(EVENT_TYPES[event.event_type])
    cost = event.ai_cost_usd
    for scope in scopes:
        for name in names:
            result.minute(scope, minute_ms, name, 1.0)
        if cost:
            result.minute(scope, minute_ms, "ai_cost_usd", cost)
