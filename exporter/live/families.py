"""The live metric families, declared once: exposed name, kind, help, label names and, for
the persisted ones, the key stem under which the writer's tally counts them, storage keeps
them and the collector reads them back.

A persisted series is the tuple ``(stem, *label values)`` (histograms: ``stem_bucket``,
``stem_sum``, ``stem_count``); build it with ``Family.series`` and friends, never by hand,
so a misspelt family is an attribute error, not an empty family. Stems are stored in
SQLite (``live_counters``, ``live_maxima``): renaming one orphans its persisted totals.
Data only: the collector turns these into Prometheus families.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Key = tuple[str, ...]
"""A persisted series: ``(stem, *label values)``."""

BUCKET_FACTOR = 1.15
"""Growth factor of the duration histograms' log-spaced bounds: Prometheus' interpolated
p50/p95/p99 stay within 2.5 % of exact on pipeline-shaped distributions (within 5 % is the
promise; ``benchmarks/latency_accuracy.py`` prints the table)."""


def log_bounds(start_s: float, end_s: float, factor: float = BUCKET_FACTOR) -> tuple[float, ...]:
    """Bounds ``start * factor**k`` (4 significant digits) up to the first at or past
    ``end``, in seconds."""
    count = math.ceil(math.log(end_s / start_s) / math.log(factor))
    return tuple(float(f"{start_s * factor**k:.4g}") for k in range(count + 1))


STAGE_BUCKETS_S = log_bounds(0.05, 4 * 3600.0)
"""Upper bounds of the stage-duration histogram: 50 ms to 4 hours (91 bounds)."""
END_TO_END_BUCKETS_S = log_bounds(1.0, 30 * 86400.0)
"""Upper bounds of the end-to-end histogram: 1 s to the 30-day maximum (107 bounds)."""
OLD_DURATION_BUCKETS_S: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200,
)  # fmt: skip
"""The layout before issue 14 (retired by schema migration 8; kept for the benchmark)."""


@dataclass(frozen=True, slots=True)
class Family:
    """One exposed family. ``name`` is the exposed name without ``_total``; ``stem`` is
    the persisted key stem (None: computed at scrape time, not persisted)."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...] = ()
    stem: str | None = None
    buckets: tuple[float, ...] = ()
    """Histograms: upper bounds in seconds (index ``len(buckets)`` is +Inf)."""

    def series(self, *values: str) -> Key:
        """The persisted key of one series (counters and maxima)."""
        return (self.persisted_stem, *values)

    def bucket_key(self, values: Key, index: int) -> Key:
        """The persisted key of histogram bucket ``index`` (not cumulative)."""
        return (f"{self.persisted_stem}_bucket", *values, str(index))

    def sum_key(self, values: Key) -> Key:
        return (f"{self.persisted_stem}_sum", *values)

    def count_key(self, values: Key) -> Key:
        return (f"{self.persisted_stem}_count", *values)

    @property
    def org_position(self) -> int | None:
        """Index of the ``org_id`` value in a persisted key, None when not org-labelled."""
        return self.labels.index("org_id") + 1 if "org_id" in self.labels else None

    @property
    def persisted_stem(self) -> str:
        if self.stem is None:
            raise ValueError(f"{self.name} is not persisted")
        return self.stem


P = "voice_pipeline_"

EVENTS = Family(
    P + "events", "counter", "Accepted events by type.", ("event_type",), "events_total"
)
ARTIFACTS = Family(
    P + "artifacts",
    "counter",
    "Voice-note artifacts by organisation and outcome.",
    ("org_id", "outcome"),
    "artifacts_total",
)
STAGE_OUTCOMES = Family(
    P + "stage_outcomes",
    "counter",
    "Stage finishes by stage, outcome and organisation.",
    ("stage", "outcome", "org_id"),
    "stage_outcomes_total",
)
AI_COST = Family(
    P + "ai_cost_usd",
    "counter",
    "AI cost in US dollars by organisation.",
    ("org_id",),
    "ai_cost_usd_total",
)
STAGE_DURATION = Family(
    P + "stage_duration_seconds",
    "histogram",
    "Duration of successful stage runs.",
    ("stage",),
    "stage_duration",
    STAGE_BUCKETS_S,
)
END_TO_END = Family(
    P + "end_to_end_duration_seconds",
    "histogram",
    "Time from artifact_received to artifact_completed.",
    (),
    "e2e_duration",
    END_TO_END_BUCKETS_S,
)
STAGE_LATENCY_WINDOW = Family(
    P + "stage_latency_window_seconds",
    "gauge",
    "p50/p95/p99 of successful stage runs finished in the 60-minute live window (event"
    " time), from a 1 % digest; absent for a stage with no run in the window.",
    ("stage", "percentile"),
)
END_TO_END_LATENCY_WINDOW = Family(
    P + "end_to_end_latency_window_seconds",
    "gauge",
    "p50/p95/p99 of artifact_received to artifact_completed for notes completed in the"
    " 60-minute live window (event time), from a 1 % digest; absent when none completed.",
    ("percentile",),
)
WINDOW_EVENTS = Family(
    P + "window_events",
    "gauge",
    'Sliding 60-minute counters by event time; org_id="" is the platform.',
    ("counter", "org_id"),
)
LAST_EVENT = Family(
    P + "last_event_timestamp_seconds",
    "gauge",
    "Event time of the newest accepted event of each type.",
    ("event_type",),
    "last_event_ts",
)
"""Persisted as a maximum (epoch ms), exposed in seconds."""
CIRCUIT_BREAKER_OPEN = Family(
    P + "circuit_breaker_open",
    "gauge",
    "1 when the newest circuit-breaker event is an opening, else 0.",
)
INFLIGHT = Family(
    P + "inflight_artifacts",
    "gauge",
    "Notes in flight (not completed or failed) by current stage.",
    ("stage",),
)
STUCK = Family(
    P + "stuck_artifacts",
    "gauge",
    "Notes in flight with no event for stuck_after (default 15 min).",
)
DISAMBIGUATION_BACKLOG = Family(
    P + "disambiguation_backlog", "gauge", "Notes in flight waiting for entity disambiguation."
)
LATENCY_BASELINE = Family(
    P + "latency_baseline_seconds",
    "gauge",
    "Per-stage p95 over the last 7 days of hourly snapshots (stages with at least"
    " 6 hours of data).",
    ("stage",),
)
LIVE_ORGS = Family(
    "voxmon_live_orgs",
    "gauge",
    "Organisations with their own 60-minute live window (first seen, up to"
    " max_live_orgs); later ones share the __other__ live scope.",
)
LIVE_ORGS_LIMIT = Family(
    "voxmon_live_orgs_limit", "gauge", "The live-organisation cap (max_live_orgs)."
)
ORGS_SEEN = Family(
    "voxmon_orgs_seen",
    "gauge",
    "Organisations seen since the database was created (every one is kept in"
    " storage and snapshots).",
)

FAMILIES: tuple[Family, ...] = (
    EVENTS, ARTIFACTS, STAGE_OUTCOMES, AI_COST, STAGE_DURATION, END_TO_END, WINDOW_EVENTS,
    STAGE_LATENCY_WINDOW, END_TO_END_LATENCY_WINDOW, LAST_EVENT, CIRCUIT_BREAKER_OPEN,
    INFLIGHT, STUCK, DISAMBIGUATION_BACKLOG, LATENCY_BASELINE, LIVE_ORGS, LIVE_ORGS_LIMIT,
    ORGS_SEEN,
)  # fmt: skip
"""Every live family, in exposition order."""

ORG_POSITIONS: Mapping[str, int] = {
    f.stem: position
    for f in FAMILIES
    if f.stem is not None and f.kind == "counter" and (position := f.org_position) is not None
}
"""Persisted counter stems labelled by organisation -> index of the org_id value in their
keys (restored counters are relabelled under today's caps)."""
