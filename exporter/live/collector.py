"""Prometheus collectors for the pipeline's domain metrics and the organisation caps, read
from the live state.

``org_id`` label values are capped: the first ``max_org_series`` organisations seen keep
their own series, the rest are summed into ``__other__``; events without an organisation
carry ``org_id=""``. So every org-labelled family sums to the platform total. The live state
is already summed that way, so a scrape never walks the organisations beyond the caps.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from exporter.catalog import (
    CIRCUIT_CLOSED,
    CIRCUIT_OPENED,
    EVENT_TYPES,
    STAGES,
    WINDOW_COUNTERS,
)
from exporter.clock import Clock
from exporter.live.state import LiveState
from exporter.live.tally import DURATION_BUCKETS_S, Key
from exporter.live.windows import PLATFORM
from exporter.timestamps import datetime_to_ms

PREFIX = "voice_pipeline_"


class PipelineCollector(Collector):
    """Yields ``voice_pipeline_*`` families from ``LiveState`` on every scrape."""

    def __init__(self, live: LiveState, clock: Clock, stuck_after_ms: int) -> None:
        self._live = live
        self._clock = clock
        self._stuck_after_ms = stuck_after_ms

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on data; no registration-time description

    def collect(self) -> Iterator[Metric]:
        counters = self._live.counters
        yield self._events(counters)
        yield self._org_counter(
            "artifacts", "Voice-note artifacts by organisation and outcome.",
            ["org_id", "outcome"], "artifacts_total",
        )  # fmt: skip
        yield self._org_counter(
            "stage_outcomes", "Stage finishes by stage, outcome and organisation.",
            ["stage", "outcome", "org_id"], "stage_outcomes_total",
        )  # fmt: skip
        yield self._org_counter(
            "ai_cost_usd", "AI cost in US dollars by organisation.",
            ["org_id"], "ai_cost_usd_total",
        )  # fmt: skip
        yield self._histogram_family(
            "stage_duration_seconds", "Duration of successful stage runs.", "stage_duration"
        )
        yield self._histogram_family(
            "end_to_end_duration_seconds",
            "Time from artifact_received to artifact_completed.",
            "e2e_duration",
        )
        yield self._window_gauge()
        yield from self._last_events()
        yield from self._artifact_gauges()
        yield self._baseline()

    def _events(self, counters: dict[Key, float]) -> Metric:
        family = CounterMetricFamily(
            PREFIX + "events", "Accepted events by type.", labels=["event_type"]
        )
        for key, value in sorted(counters.items()):
            if key[0] == "events_total":
                family.add_metric([key[1]], value)
        return family

    def _org_counter(self, name: str, doc: str, labels: list[str], key_name: str) -> Metric:
        """A family whose keys already carry the capped ``org_id`` label value."""
        family = CounterMetricFamily(PREFIX + name, doc, labels=labels)
        for key, total in sorted(self._live.counters.items()):
            if key[0] == key_name:
                family.add_metric(list(key[1:]), total)
        return family

    def _histogram_family(self, name: str, doc: str, stem: str) -> Metric:
        label_names = ["stage"] if stem == "stage_duration" else []
        family = HistogramMetricFamily(PREFIX + name, doc, labels=label_names)
        counters = self._live.counters
        series = sorted({key[1:] for key in counters if key[0] == f"{stem}_count"})
        for labels in series:
            buckets, running = [], 0.0
            for index, bound in enumerate((*DURATION_BUCKETS_S, float("inf"))):
                running += counters.get((f"{stem}_bucket", *labels, str(index)), 0.0)
                buckets.append((_le(bound), running))
            total = counters.get((f"{stem}_sum", *labels), 0.0)
            family.add_metric(list(labels), buckets, total)
        return family

    def _window_gauge(self) -> Metric:
        family = GaugeMetricFamily(
            PREFIX + "window_events",
            'Sliding 60-minute counters by event time; org_id="" is the platform.',
            labels=["counter", "org_id"],
        )
        now_ms = datetime_to_ms(self._clock.now())
        windows = self._live.series_windows  # one scope per label value, not per org
        rows = {
            (counter, label): value
            for label in windows.scopes()
            for counter, value in windows.totals(label, now_ms).items()
        }
        if not any(label == PLATFORM for _, label in rows):
            rows.update({(counter, PLATFORM): 0.0 for counter in WINDOW_COUNTERS})
        for (counter, label), value in sorted(rows.items()):
            family.add_metric([counter, label], value)
        return family

    def _last_events(self) -> Iterator[Metric]:
        maxima = self._live.maxima
        last = GaugeMetricFamily(
            PREFIX + "last_event_timestamp_seconds",
            "Event time of the newest accepted event of each type.",
            labels=["event_type"],
        )
        for name in EVENT_TYPES:
            if (value := maxima.get(("last_event_ts", name))) is not None:
                last.add_metric([name], value / 1000.0)
        yield last
        opened = maxima.get(("last_event_ts", CIRCUIT_OPENED), float("-inf"))
        closed = maxima.get(("last_event_ts", CIRCUIT_CLOSED), float("-inf"))
        yield GaugeMetricFamily(
            PREFIX + "circuit_breaker_open",
            "1 when the newest circuit-breaker event is an opening, else 0.",
            value=1.0 if opened > closed else 0.0,
        )

    def _artifact_gauges(self) -> Iterator[Metric]:
        inflight = self._live.inflight
        by_stage = GaugeMetricFamily(
            PREFIX + "inflight_artifacts",
            "Notes in flight (not completed or failed) by current stage.",
            labels=["stage"],
        )
        counts = inflight.by_stage()
        for stage in STAGES:
            by_stage.add_metric([stage], counts.get(stage, 0))
        yield by_stage
        now_ms = datetime_to_ms(self._clock.now())
        yield GaugeMetricFamily(
            PREFIX + "stuck_artifacts",
            "Notes in flight with no event for stuck_after (default 15 min).",
            value=inflight.stuck(now_ms - self._stuck_after_ms),
        )
        yield GaugeMetricFamily(
            PREFIX + "disambiguation_backlog",
            "Notes in flight waiting for entity disambiguation.",
            value=inflight.awaiting_disambiguation(),
        )

    def _baseline(self) -> Metric:
        family = GaugeMetricFamily(
            PREFIX + "latency_baseline_seconds",
            "Per-stage p95 over the last 7 days of hourly snapshots (stages with at least"
            " 6 hours of data).",
            labels=["stage"],
        )
        for stage, seconds in sorted(self._live.latency_baseline_s.items()):
            family.add_metric([stage], seconds)
        return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class LiveOrgsCollector(Collector):
    """``voxmon_*`` gauges for the organisation caps: how many organisations have their own
    live window, the cap, and how many organisations voxmon has seen in all."""

    def __init__(self, live: LiveState) -> None:
        self._orgs = live.orgs

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        orgs = self._orgs
        yield GaugeMetricFamily(
            "voxmon_live_orgs",
            "Organisations with their own 60-minute live window (first seen, up to"
            " max_live_orgs); later ones share the __other__ live scope.",
            value=orgs.live,
        )
        yield GaugeMetricFamily(
            "voxmon_live_orgs_limit", "The live-organisation cap (max_live_orgs).",
            value=orgs.max_live_orgs,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "voxmon_orgs_seen",
            "Organisations seen since the database was created (every one is kept in"
            " storage and snapshots).",
            value=orgs.seen,
        )
