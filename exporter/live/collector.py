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
    PROCESSING_STAGES,
    STAGES,
    WINDOW_COUNTERS,
)
from exporter.clock import Clock
from exporter.live.families import (
    AI_COST,
    ARTIFACTS,
    CIRCUIT_BREAKER_OPEN,
    DISAMBIGUATION_BACKLOG,
    END_TO_END,
    END_TO_END_LATENCY_WINDOW,
    EVENTS,
    INFLIGHT,
    LAST_EVENT,
    LATENCY_BASELINE,
    LIVE_ORGS,
    LIVE_ORGS_LIMIT,
    ORGS_SEEN,
    STAGE_DURATION,
    STAGE_LATENCY_WINDOW,
    STAGE_OUTCOMES,
    STUCK,
    WINDOW_EVENTS,
    Family,
    Key,
)
from exporter.live.latency import PERCENTILE_LABELS
from exporter.live.state import LiveState
from exporter.live.tally import END_TO_END_SERIES
from exporter.live.windows import PLATFORM
from exporter.timestamps import datetime_to_ms


def gauge(family: Family, value: float | None = None) -> GaugeMetricFamily:
    """An empty gauge family as ``family`` declares it, or its one unlabelled sample."""
    assert family.kind == "gauge", family
    labels = list(family.labels) if value is None else None
    return GaugeMetricFamily(family.name, family.help, labels=labels, value=value)


def _counter(family: Family, counters: dict[Key, float]) -> Metric:
    """A counter family from its persisted series (org_id values already capped)."""
    assert family.kind == "counter", family
    metric = CounterMetricFamily(family.name, family.help, labels=list(family.labels))
    for key, total in sorted(counters.items()):
        if key[0] == family.persisted_stem:
            metric.add_metric(list(key[1:]), total)
    return metric


def _histogram(family: Family, counters: dict[Key, float]) -> Metric:
    """A histogram family from its persisted (non-cumulative) buckets, sums and counts."""
    assert family.kind == "histogram", family
    metric = HistogramMetricFamily(family.name, family.help, labels=list(family.labels))
    count_stem = family.count_key(())[0]
    for labels in sorted({key[1:] for key in counters if key[0] == count_stem}):
        buckets, running = [], 0.0
        for index, bound in enumerate((*family.buckets, float("inf"))):
            running += counters.get(family.bucket_key(labels, index), 0.0)
            buckets.append((_le(bound), running))
        metric.add_metric(list(labels), buckets, counters.get(family.sum_key(labels), 0.0))
    return metric


class PipelineCollector(Collector):
    """Yields ``voice_pipeline_*`` families from ``LiveState`` on every scrape."""

    def __init__(self, live: LiveState, clock: Clock) -> None:
        self._live = live
        self._clock = clock

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on data; no registration-time description

    def collect(self) -> Iterator[Metric]:
        counters = self._live.counters
        for family in (EVENTS, ARTIFACTS, STAGE_OUTCOMES, AI_COST):
            yield _counter(family, counters)
        for family in (STAGE_DURATION, END_TO_END):
            yield _histogram(family, counters)
        yield self._window_gauge()
        yield from self._latency_windows()
        yield from self._last_events()
        yield from self._artifact_gauges()
        yield self._baseline()

    def _window_gauge(self) -> Metric:
        family = gauge(WINDOW_EVENTS)
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

    def _latency_windows(self) -> Iterator[Metric]:
        """Window quantiles per stage and end to end; a series with no duration in the
        window has no samples (a 0 would read as "fast")."""
        now_ms = datetime_to_ms(self._clock.now())
        latency = self._live.latency
        stages = gauge(STAGE_LATENCY_WINDOW)
        for stage in PROCESSING_STAGES:
            for q, seconds in latency.quantiles(stage, now_ms)[1].items():
                stages.add_metric([stage, PERCENTILE_LABELS[q]], seconds)
        yield stages
        end_to_end = gauge(END_TO_END_LATENCY_WINDOW)
        for q, seconds in latency.quantiles(END_TO_END_SERIES, now_ms)[1].items():
            end_to_end.add_metric([PERCENTILE_LABELS[q]], seconds)
        yield end_to_end

    def _last_events(self) -> Iterator[Metric]:
        maxima = self._live.maxima
        last = gauge(LAST_EVENT)
        for name in EVENT_TYPES:
            if (value := maxima.get(LAST_EVENT.series(name))) is not None:
                last.add_metric([name], value / 1000.0)
        yield last
        opened = maxima.get(LAST_EVENT.series(CIRCUIT_OPENED), float("-inf"))
        closed = maxima.get(LAST_EVENT.series(CIRCUIT_CLOSED), float("-inf"))
        yield gauge(CIRCUIT_BREAKER_OPEN, 1.0 if opened > closed else 0.0)

    def _artifact_gauges(self) -> Iterator[Metric]:
        figures = self._live.inflight  # read from storage before the scrape
        by_stage = gauge(INFLIGHT)
        for stage in STAGES:
            by_stage.add_metric([stage], figures.by_stage.get(stage, 0))
        yield by_stage
        yield gauge(STUCK, figures.stuck)
        yield gauge(DISAMBIGUATION_BACKLOG, figures.awaiting)

    def _baseline(self) -> Metric:
        family = gauge(LATENCY_BASELINE)
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
        yield gauge(LIVE_ORGS, orgs.live)
        yield gauge(LIVE_ORGS_LIMIT, orgs.max_live_orgs)
        yield gauge(ORGS_SEEN, orgs.seen)
