"""Records that storage reads and writes and the pure core computes with: the hourly
aggregation's group and latency rows, snapshot rows, organisation totals, job runs and the
horizons. Part of the model; no backend is imported here. Times are UTC epoch ms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exporter.timestamps import datetime_to_ms, format_rfc3339


@dataclass(frozen=True, slots=True)
class GroupRow:
    """Events of one (org, type, stage) in a window; ``org_id`` None means no org."""

    org_id: str | None
    event_type: str
    stage: str | None
    count: int
    ai_cost_usd: float
    confidence_count: int
    confidence_sum: float
    entity_count: int
    auto_resolved_count: int
    disambiguation_count: int
    claim_count: int
    draft_count: int


@dataclass(frozen=True, slots=True)
class LatencyRow:
    """Durations of one (org, type) falling in one log bucket (``bucket`` None = 0 ms)."""

    org_id: str | None
    event_type: str
    bucket: int | None
    count: int
    sum_ms: float
    min_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class LatencyGroup:
    """Durations of one (org, type) in a window, bucketed in SQL as ``rollup.digest`` buckets
    them: count, sum, min and max of the exact durations, how many were 0 ms, and the count
    of every other occupied bucket (index -> count)."""

    org_id: str | None
    event_type: str
    count: int
    sum_ms: float
    min_ms: float
    max_ms: float
    zero_count: int
    buckets: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """One stored snapshot: its key, the totals the organisation breakdown sums in SQL,
    and the encoded parts."""

    period: str
    period_start_ms: int
    scope: str
    artifacts_received: int
    artifacts_completed: int
    artifacts_failed: int
    ai_cost_usd: float
    parts: bytes
    end_to_end: bytes | None = None
    """The end-to-end digest alone, so organisation breakdowns need not decode all parts."""


PartsRow = tuple[int, str, bytes]
"""``(period_start_ms, scope, parts)`` of a stored snapshot, as the daily rollup reads a
day's hourly rows (``Snapshots.read_parts``): the tuples the driver returns, as they come
(building a day's 4,824 ``SnapshotRow`` cost more than reading them: 10 of 29 ms)."""


@dataclass(frozen=True, slots=True)
class OrgTotals:
    """One organisation's summed totals over a range of snapshots."""

    org_id: str
    received: int
    completed: int
    failed: int
    ai_cost_usd: float


@dataclass(frozen=True, slots=True)
class JobRun:
    """The last run of one job. Times are UTC epoch ms. ``trigger`` says how it was run
    (``schedule``, ``api`` or ``cli``) and ``instance`` which replica (its instance_id) ran
    it; ``successes``/``failures``/``seconds_total`` count every recorded run of the job
    (monotonic, for Prometheus)."""

    job: str
    last_run_ms: int
    last_result: str
    last_error: str | None
    last_success_ms: int | None
    duration_s: float
    rows_written: int
    windows: str
    trigger: str = "schedule"
    successes: int = 0
    failures: int = 0
    seconds_total: float = 0.0
    instance: str = ""


_DAY_MS = 86_400_000
NONE = -(2**62)
"""A watermark no cleanup has set yet: nothing was pruned."""


@dataclass(frozen=True, slots=True)
class Horizons:
    """``history_start_ms``: start of the hour of the oldest event ever accepted (None: no
    event yet). ``events_from_ms``: hour-aligned; raw events before it may have been pruned.
    ``hourly_from_ms``: day-aligned; hourly snapshots before it may have been pruned.
    ``daily_from_ms``: daily snapshots before it may have been pruned."""

    history_start_ms: int | None = None
    events_from_ms: int = NONE
    hourly_from_ms: int = NONE
    daily_from_ms: int = NONE

    @property
    def accept_from_ms(self) -> int:
        """Events before it can no longer reach every snapshot: their hour's raw events,
        their day's hourly rows or their day's daily row were pruned (ingest refuses them)."""
        daily = self.daily_from_ms
        if daily != NONE:
            daily = -(-daily // _DAY_MS) * _DAY_MS  # a day starting before it was pruned
        return max(self.events_from_ms, self.hourly_from_ms, daily)


@dataclass(frozen=True, slots=True)
class Skip:
    """Consecutive windows of one period refused for one reason: ``[first, last]``."""

    period: str
    first: datetime
    last: datetime
    count: int
    reason: str
    message: str

    def to_json(self) -> dict[str, object]:
        return {
            "period": self.period,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "windows": self.count,
            "reason": self.reason,
            "message": self.message,
        }

    def describe(self) -> str:
        span = _iso(self.first) if self.count == 1 else f"{_iso(self.first)}..{_iso(self.last)}"
        noun = "window" if self.count == 1 else "windows"
        return f"skipped {self.period} {span} ({self.count} {noun}): {self.message}"


def _iso(when: datetime) -> str:
    return format_rfc3339(datetime_to_ms(when))


@dataclass(frozen=True, slots=True)
class Range:
    """``period`` windows (hourly or daily) starting in ``[start_ms, end_ms)``: a range to
    report on, or to backfill."""

    period: str
    start_ms: int
    end_ms: int


@dataclass(frozen=True, slots=True)
class EventFilter:
    """The recent-events feed's filters (None: any) and its retention bound: events received
    at or after ``since_ms`` whose event time is at or after it too."""

    since_ms: int
    org_id: str | None = None
    event_type: str | None = None
    artifact_id: str | None = None


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Where an event sits in the feed's order, newest first: arrival time (epoch ms), then
    the storage's arrival sequence. A page continues strictly before one of these."""

    received_ms: int
    seq: int


@dataclass(frozen=True, slots=True)
class InflightFigures:
    """What the in-flight gauges show, read from the in-flight table in one transaction:
    notes in flight per current stage ('' before the first stage), those awaiting
    disambiguation, and those with no event since the stuck cutoff (strictly before)."""

    by_stage: dict[str, int]
    awaiting: int = 0
    stuck: int = 0


@dataclass(frozen=True, slots=True)
class OrgEntry:
    """An organisation voxmon has seen or has a name for (``name`` None: unnamed)."""

    org_id: str
    name: str | None


@dataclass(frozen=True, slots=True)
class Gap:
    """Part of a summarised range the snapshots do not (fully) cover, and why."""

    start_ms: int
    end_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class RangeSummary:
    """One merged row over ``[start_ms, end_ms)`` (whole hours): the parts and derived fields
    of a history row, how many daily and hourly snapshots were merged, and the gaps."""

    start_ms: int
    end_ms: int
    parts: dict[str, Any]
    derived: dict[str, float]
    daily_windows: int
    hourly_windows: int
    gaps: tuple[Gap, ...]
