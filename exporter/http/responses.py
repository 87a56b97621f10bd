"""The JSON bodies the API answers with, as msgspec Structs: the handlers build and encode
these, and ``openapi.py`` generates the document's schemas from them (with the report
rows of ``exporter.reports`` and the request types). Times are RFC 3339 UTC strings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from exporter.catalog import WINDOW_COUNTERS
from exporter.records import OrgEntry
from exporter.reports import HistoryRow, OrgReport, StageReport

Time = str


class Status(msgspec.Struct):
    status: str


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    details: list[Any]


class Error(msgspec.Struct):
    """Every refusal: 4xx and 5xx alike."""

    error: ErrorDetail


class FieldProblem(msgspec.Struct):
    field: str
    message: str


class ItemErrors(msgspec.Struct):
    """One rejected (or warned about) item of a batch, by its index in the batch."""

    index: int
    event_id: str | None
    errors: list[FieldProblem]


class IngestResult(msgspec.Struct, kw_only=True):
    """``POST /v1/events``: 200 once accepted events are committed; 400 (same shape) when
    no item is valid. ``warnings``: accepted items stored with a field dropped (a duration
    over max_duration_days). Beyond the first 100 of each, items are counted in
    ``*_not_listed``, not listed."""

    accepted: int
    duplicates: int
    rejected: list[ItemErrors]
    warnings: list[ItemErrors]
    rejected_not_listed: int | UnsetType = UNSET
    warnings_not_listed: int | UnsetType = UNSET


class WindowLatency(msgspec.Struct, kw_only=True):
    """Durations that finished in the 60-minute window: how many, and their p50/p95/p99 in
    seconds from a 1 % digest (within 1 % of exact)."""

    count: int
    p50_s: float
    p95_s: float
    p99_s: float


Realtime = msgspec.defstruct(
    "Realtime",
    [
        ("scope", Literal["platform", "org"]),
        ("org_id", str | None),
        ("window_start", Time),
        ("window_end", Time),
        *((f"{name}_1h", float if name == "ai_cost_usd" else int) for name in WINDOW_COUNTERS),
        ("failure_rate_1h", float),
        ("stage_latency_1h", dict[str, WindowLatency | None] | None),
        ("end_to_end_latency_1h", WindowLatency | None),
    ],
    kw_only=True,
    module=__name__,
)
"""``GET /v1/metrics/realtime``: one field per window counter of the catalog, and the
window's latency quantiles per processing stage and end to end (platform scope only: null
for an organisation; a stage with no finished run in the window is null)."""


class RangeBody(msgspec.Struct, kw_only=True):
    period: str
    start: Time
    end: Time
    scope: Literal["platform", "org"]
    org_id: str | None


class History(RangeBody, kw_only=True):
    rows: list[HistoryRow]


class Stages(RangeBody, kw_only=True):
    stages: list[StageReport]


class OrgBreakdown(RangeBody, kw_only=True):
    orgs: list[OrgReport]


class Org(msgspec.Struct):
    """One organisation; ``named`` says whether a display name was set (``name`` null)."""

    org_id: str
    name: str | None
    named: bool

    @classmethod
    def of(cls, entry: OrgEntry) -> Org:
        return cls(entry.org_id, entry.name, entry.name is not None)


class Orgs(msgspec.Struct):
    """A page by ``org_id``; ``next_cursor`` is the last id of the page, None at the end."""

    orgs: list[Org]
    next_cursor: str | None


class Artifact(msgspec.Struct, kw_only=True):
    """A note in the artifact state read model; ages in seconds."""

    artifact_id: str
    org_id: str | None
    status: str
    current_stage: str | None
    last_event_type: str
    last_event_at: Time
    first_event_at: Time
    age_s: float
    idle_s: float
    failed_stage: str | None
    error_code: str | None
    awaiting_disambiguation: bool


class Artifacts(msgspec.Struct, kw_only=True):
    state: str
    artifacts: list[Artifact]
    next_cursor: str | None


class StoredEvent(msgspec.Struct, kw_only=True):
    """The fields every stored event answers with. ``duration_source``: duration_ms,
    stage_times, started_event, received_event, or over_max (a duration over
    max_duration_days, dropped)."""

    event_id: str
    event_type: str
    timestamp: Time
    org_id: str | None
    voice_note_id: str | None
    coach_user_id: str | None
    stage: str | None
    duration_ms: float | None
    duration_source: str | None
    previous_status: str | None
    new_status: str | None
    error_code: str | None
    error_message: str | None


class TimelineEvent(StoredEvent, kw_only=True):
    """A note's stored event; ``metadata`` as sent, unknown keys included."""

    metadata: dict[str, Any] | None


class Timeline(msgspec.Struct):
    artifact_id: str
    events: list[TimelineEvent]


class JobRun(msgspec.Struct, kw_only=True):
    job: str
    last_run: Time
    result: str
    error: str | None
    last_success: Time | None
    duration_s: float
    rows_written: int
    windows: str
    trigger: Annotated[str, msgspec.Meta(description="schedule, api or cli")]
    instance: Annotated[
        str, msgspec.Meta(description="instance_id of the replica that ran it (cli@host: the CLI)")
    ]


class SkippedRange(msgspec.Struct):
    """Windows the rollup guard refused, as a range."""

    period: str
    first: Time
    last: Time
    windows: int
    reason: str
    message: str


class RollupRun(JobRun, kw_only=True):
    skipped: list[SkippedRange]


class JobStatus(msgspec.Struct):
    job: str
    schedule: str
    next_fire: Time
    last_run: JobRun | None


class Rollups(msgspec.Struct):
    jobs: list[JobStatus]
