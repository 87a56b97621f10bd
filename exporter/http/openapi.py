"""The OpenAPI 3.1 document served at ``/openapi.json``: every endpoint, parameter, request
and response body, errors included. Built from small helpers so each schema is written once."""

from __future__ import annotations

from typing import Any

from exporter.catalog import EVENT_TYPES, STAGES, WINDOW_COUNTERS
from exporter.model import (
    MAX_COST_USD,
    MAX_COUNT,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_TRANSCRIPT_S,
    WIRE_MAX_DURATION_MS,
)

JSON = "application/json"
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    return schema


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


STR, INT, NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}
TIME = {"type": "string", "description": "RFC 3339 UTC, millisecond precision"}
WIRE_TIME: Schema = {
    "anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}],
    "description": "RFC 3339 with an offset, or integer epoch milliseconds",
}


def _limited(n: int) -> Schema:
    return {"type": "string", "maxLength": n}


def _event_schema() -> Schema:
    count = {"type": "integer", "minimum": 0, "maximum": MAX_COUNT}
    metadata = {
        "type": "object",
        "description": (
            "Known keys are validated as listed; any other key is stored as sent and shown in"
            f" the artifact timeline. At most {MAX_METADATA_KEYS} keys of at most"
            f" {MAX_METADATA_KEY_CHARS} characters, {MAX_METADATA_BYTES} bytes of JSON as"
            f" sent, values nested at most {MAX_METADATA_DEPTH} levels."
        ),
        "maxProperties": MAX_METADATA_KEYS,
        "propertyNames": {"maxLength": MAX_METADATA_KEY_CHARS},
        "additionalProperties": True,
        "properties": {
            **{
                k: count
                for k in (
                    "claim_count",
                    "entity_count",
                    "auto_resolved_count",
                    "disambiguation_count",
                    "draft_count",
                    "transcript_word_count",
                    "retry_attempt",
                )
            },
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "transcript_duration_s": {"type": "number", "minimum": 0, "maximum": MAX_TRANSCRIPT_S},
            "ai_cost_usd": {"type": "number", "minimum": 0, "maximum": MAX_COST_USD},
            "ai_model": _limited(128),
            "source_channel": _limited(128),
        },
    }
    properties: dict[str, Schema] = {
        "event_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "event_type": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "timestamp": WIRE_TIME,
        "artifact_id": _limited(128),
        "org_id": {"type": "string", "minLength": 1, "maxLength": 128},
        "voice_note_id": _limited(128),
        "coach_user_id": _limited(128),
        "stage": {"type": "string", "enum": list(STAGES)},
        "duration_ms": {
            "type": "number",
            "minimum": 0,
            "maximum": WIRE_MAX_DURATION_MS,
            "description": (
                "Milliseconds. Over max_duration_days (default 30 days) the event is stored"
                " without a duration and the answer carries a warning; over 10 years the"
                " item is rejected."
            ),
        },
        "stage_started_at": WIRE_TIME,
        "stage_completed_at": WIRE_TIME,
        "previous_status": _limited(64),
        "new_status": _limited(64),
        "error_code": _limited(64),
        "error_message": _limited(2000),
        "metadata": metadata,
    }
    schema = obj(properties, ["event_id", "event_type", "timestamp"])
    schema["additionalProperties"] = False
    return schema


def _schemas() -> dict[str, Schema]:
    field_error = obj({"field": STR, "message": STR})
    realtime = {f"{name}_1h": NUM if name == "ai_cost_usd" else INT for name in WINDOW_COUNTERS}
    range_head = {"period": STR, "start": TIME, "end": TIME, "scope": STR, "org_id": nullable(STR)}
    numbers = {"type": "object", "additionalProperties": NUM}
    item_errors = {
        "type": "array",
        "items": obj(
            {
                "index": INT,
                "event_id": nullable(STR),
                "errors": {"type": "array", "items": field_error},
            }
        ),
    }
    return {
        "Error": obj({"error": obj({"code": STR, "message": STR, "details": {"type": "array"}})}),
        "Event": _event_schema(),
        "IngestResult": obj(
            {
                "accepted": INT,
                "duplicates": INT,
                "rejected": item_errors,
                "warnings": {
                    **item_errors,
                    "description": "accepted items stored with a field dropped (a duration"
                    " over max_duration_days), same shape as rejected",
                },
                "rejected_not_listed": {
                    **INT,
                    "description": "rejections beyond the first 100, counted not listed",
                },
                "warnings_not_listed": {
                    **INT,
                    "description": "warnings beyond the first 100, counted not listed",
                },
            },
            ["accepted", "duplicates", "rejected", "warnings"],
        ),
        "Realtime": obj(
            {
                "scope": STR,
                "org_id": nullable(STR),
                "window_start": TIME,
                "window_end": TIME,
                **realtime,
                "failure_rate_1h": NUM,
            }
        ),
        "History": obj(
            {
                **range_head,
                "rows": {
                    "type": "array",
                    "items": obj(
                        {
                            "period_start": TIME,
                            "period_end": TIME,
                            "parts": {"type": "object"},
                            "derived": numbers,
                        }
                    ),
                },
            }
        ),
        "Stages": obj(
            {
                **range_head,
                "stages": {
                    "type": "array",
                    "items": obj(
                        {
                            "stage": STR,
                            "attempts": INT,
                            "successes": INT,
                            "failures": INT,
                            "failure_rate": NUM,
                            "ai_cost_usd": NUM,
                            "latency_avg_ms": NUM,
                            "latency_p50_ms": NUM,
                            "latency_p95_ms": NUM,
                            "latency_p99_ms": NUM,
                        }
                    ),
                },
            }
        ),
        "OrgBreakdown": obj(
            {
                **range_head,
                "orgs": {
                    "type": "array",
                    "items": obj(
                        {
                            "org_id": STR,
                            "name": nullable(STR),
                            "received": INT,
                            "completed": INT,
                            "failed": INT,
                            "failure_rate": NUM,
                            "ai_cost_usd": NUM,
                            "end_to_end_avg_ms": NUM,
                            "end_to_end_p95_ms": NUM,
                        }
                    ),
                },
            }
        ),
        "Org": obj(
            {
                "org_id": STR,
                "name": nullable(STR),
                "named": {"type": "boolean", "description": "a display name was set"},
            }
        ),
        "OrgName": {
            **obj({"name": {"type": "string", "minLength": 1, "maxLength": 200}}),
            "additionalProperties": False,
        },
        "Orgs": obj(
            {
                "orgs": {
                    "type": "array",
                    "items": ref("Org"),
                    "description": "every organisation seen in events or named, by org_id",
                },
                "next_cursor": nullable(STR),
            }
        ),
        "Summary": obj(
            {
                "start": TIME,
                "end": TIME,
                "scope": STR,
                "org_id": nullable(STR),
                "row": obj(
                    {
                        "period_start": TIME,
                        "period_end": TIME,
                        "parts": {"type": "object"},
                        "derived": numbers,
                    }
                ),
                "windows": obj({"daily": INT, "hourly": INT}),
                "not_rolled_up": {
                    "type": "array",
                    "description": "whole hours of the row the snapshots do not (fully)"
                    " cover: open (not ended), not_rolled_up (no snapshot yet, or pruned),"
                    " late_events (snapshot older than late events awaiting re-aggregation)",
                    "items": obj(
                        {
                            "start": TIME,
                            "end": TIME,
                            "reason": {
                                "type": "string",
                                "enum": ["open", "not_rolled_up", "late_events"],
                            },
                        }
                    ),
                },
            }
        ),
        "Feed": obj(
            {
                "events": {
                    "type": "array",
                    "items": obj(
                        {
                            "event_id": STR,
                            "event_type": STR,
                            "timestamp": TIME,
                            "received_at": TIME,
                            **{
                                name: nullable(STR)
                                for name in (
                                    "artifact_id",
                                    "org_id",
                                    "voice_note_id",
                                    "coach_user_id",
                                    "stage",
                                    "duration_source",
                                    "previous_status",
                                    "new_status",
                                    "error_code",
                                    "error_message",
                                )
                            },
                            "duration_ms": nullable(NUM),
                            "metadata": {
                                **nullable({"type": "object"}),
                                "description": "as sent, unknown keys included",
                            },
                        }
                    ),
                },
                "next": {
                    **nullable(STR),
                    "description": "opaque cursor for the next (older) page; null at the end",
                },
            }
        ),
        "Artifacts": obj(
            {
                "state": STR,
                "next_cursor": nullable(STR),
                "artifacts": {
                    "type": "array",
                    "items": obj(
                        {
                            "artifact_id": STR,
                            "org_id": nullable(STR),
                            "status": STR,
                            "current_stage": nullable(STR),
                            "last_event_type": STR,
                            "last_event_at": TIME,
                            "first_event_at": TIME,
                            "age_s": NUM,
                            "idle_s": NUM,
                            "failed_stage": nullable(STR),
                            "error_code": nullable(STR),
                            "awaiting_disambiguation": {"type": "boolean"},
                        }
                    ),
                },
            }
        ),
        "Timeline": obj(
            {
                "artifact_id": STR,
                "events": {
                    "type": "array",
                    "items": obj(
                        {
                            "event_id": STR,
                            "event_type": STR,
                            "timestamp": TIME,
                            "duration_ms": nullable(NUM),
                            "duration_source": {
                                **nullable(STR),
                                "description": "duration_ms, stage_times, started_event,"
                                " received_event, or over_max (a duration over"
                                " max_duration_days, dropped)",
                            },
                            "metadata": {
                                **nullable({"type": "object"}),
                                "description": "as sent, unknown keys included",
                            },
                        },
                        ["event_id", "event_type", "timestamp"],
                    ),
                },
            }
        ),
        "JobRun": obj(
            {
                "job": STR,
                "last_run": TIME,
                "result": STR,
                "error": nullable(STR),
                "last_success": nullable(TIME),
                "duration_s": NUM,
                "rows_written": INT,
                "windows": STR,
                "trigger": {"type": "string", "enum": ["schedule", "api", "cli"]},
            }
        ),
        "RollupRun": {
            "allOf": [
                ref("JobRun"),
                obj(
                    {
                        "skipped": {
                            "type": "array",
                            "description": "windows the rollup guard refused, as ranges",
                            "items": obj(
                                {
                                    "period": STR,
                                    "first": TIME,
                                    "last": TIME,
                                    "windows": INT,
                                    "reason": STR,
                                    "message": STR,
                                }
                            ),
                        }
                    }
                ),
            ]
        },
        "Rollups": obj(
            {
                "jobs": {
                    "type": "array",
                    "items": obj(
                        {
                            "job": STR,
                            "schedule": STR,
                            "next_fire": TIME,
                            "last_run": nullable(ref("JobRun")),
                        }
                    ),
                }
            }
        ),
        "Status": obj({"status": STR}),
    }


def _param(name: str, where: str, schema: Schema, required: bool = False, doc: str = "") -> Schema:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": doc,
    }


_TIME_PARAM = {"type": "string", "description": "RFC 3339 with offset, or epoch ms"}
RANGE_PARAMS = [
    _param("period", "query", {"type": "string", "enum": ["hourly", "daily"]}, True),
    _param("start", "query", _TIME_PARAM, True, "inclusive window start"),
    _param("end", "query", _TIME_PARAM, True, "exclusive; start < end; max_range_rows windows"),
]
ORG_PARAM = _param(
    "org_id",
    "query",
    {"type": "string", "minLength": 1, "maxLength": 128},
    doc="an organisation; absent = platform rows only",
)
ORG_PARAM_FILTER = _param(
    "org_id", "query", {"type": "string", "minLength": 1, "maxLength": 128}, doc="only this one"
)


def _responses(ok: Schema | None, *errors: int, media: str = JSON) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ok is not None:
        out["200"] = {"description": "OK", "content": {media: {"schema": ok}}}
    error = {"content": {JSON: {"schema": ref("Error")}}}
    for code in (400, 401, 403, *errors):
        out[str(code)] = {"description": "error", **error}
    out["default"] = {"description": "any other error", **error}
    return out


def _op(
    summary: str, ok: Schema | None, params: list[Schema], *errors: int, **extra: Any
) -> Schema:
    return {"summary": summary, "parameters": params, "responses": _responses(ok, *errors), **extra}


def _head(summary: str) -> Schema:
    """A HEAD operation: the GET's status and headers, never a body."""
    responses = {str(code): {"description": "no body"} for code in (200, 401, 403)}
    return {"summary": summary, "parameters": [], "responses": responses}


def _paths() -> dict[str, Any]:
    events_body = {
        "required": True,
        "content": {
            JSON: {"schema": {"anyOf": [ref("Event"), {"type": "array", "items": ref("Event")}]}}
        },
    }
    ingest = _op(
        "Ingest events (JSON object or array; also application/x-ndjson, gzip)",
        ref("IngestResult"),
        [],
        413,
        415,
        503,
        requestBody=events_body,
    )
    ingest["responses"]["400"] = {
        "description": "nothing valid",
        "content": {JSON: {"schema": {"anyOf": [ref("IngestResult"), ref("Error")]}}},
    }
    job = _param(
        "job",
        "path",
        {
            "type": "string",
            "enum": ["rollup-hourly", "rollup-daily", "cleanup-snapshots", "cleanup-events"],
        },
    )
    org_path = _param("org_id", "path", {"type": "string", "minLength": 1, "maxLength": 128})
    limit = _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000})
    metrics = {
        "summary": "Prometheus exposition (OpenMetrics by Accept)",
        "parameters": [],
        "responses": _responses({"type": "string"}, media="text/plain"),
    }
    feed = _op(
        "Recent events, newest received first, within event retention, cursor-paginated",
        ref("Feed"),
        [
            _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ORG_PARAM_FILTER,
            _param("event_type", "query", {"type": "string", "enum": sorted(EVENT_TYPES)}),
            _param("artifact_id", "query", {"type": "string", "minLength": 1, "maxLength": 128}),
            _param("before", "query", {"type": "string"}, doc="the previous page's next"),
        ],
    )
    summary = _op(
        "One row merged over a range (daily snapshots for whole days, hourly at the edges;"
        " bounds widen to whole hours), and the hours not covered",
        ref("Summary"),
        [
            _param("start", "query", _TIME_PARAM, True, "inclusive"),
            _param("end", "query", _TIME_PARAM, True, "exclusive; start < end"),
            ORG_PARAM,
        ],
    )
    return {
        "/v1/events": {"post": ingest, "get": feed},
        "/v1/metrics/summary": {"get": summary},
        "/v1/metrics/realtime": {
            "get": _op(
                "60-minute live counters (404 org_not_live beyond max_live_orgs)",
                ref("Realtime"),
                [ORG_PARAM],
                404,
            )
        },
        "/v1/metrics/history": {
            "get": _op(
                "Snapshots of one scope, ascending", ref("History"), [*RANGE_PARAMS, ORG_PARAM]
            )
        },
        "/v1/metrics/stages": {
            "get": _op(
                "Per-stage breakdown over a range", ref("Stages"), [*RANGE_PARAMS, ORG_PARAM]
            )
        },
        "/v1/metrics/orgs": {
            "get": _op(
                "Per-organisation breakdown over a range",
                ref("OrgBreakdown"),
                [*RANGE_PARAMS, limit],
            )
        },
        "/v1/orgs": {
            "get": _op(
                "Organisations seen or named, with their names or null",
                ref("Orgs"),
                [
                    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000}),
                    _param("cursor", "query", {"type": "string"}, doc="last id of previous page"),
                ],
            )
        },
        "/v1/orgs/{org_id}": {
            "get": _op("One organisation's display name", ref("Org"), [org_path], 404),
            "put": _op(
                "Set a display name (admin)",
                ref("Org"),
                [org_path],
                requestBody={"required": True, "content": {JSON: {"schema": ref("OrgName")}}},
            ),
        },
        "/v1/artifacts": {
            "get": _op(
                "Notes by state, cursor-paginated",
                ref("Artifacts"),
                [
                    _param(
                        "state",
                        "query",
                        {
                            "type": "string",
                            "enum": ["in_flight", "failed", "stuck", "completed"],
                        },
                        True,
                    ),
                    limit,
                    _param("cursor", "query", {"type": "string"}, doc="last id of previous page"),
                    ORG_PARAM_FILTER,
                    _param(
                        "stage",
                        "query",
                        {"type": "string", "enum": list(STAGES)},
                        doc="the note's current stage",
                    ),
                ],
            )
        },
        "/v1/artifacts/{artifact_id}/events": {
            "get": _op(
                "A note's events, ascending",
                ref("Timeline"),
                [
                    _param("artifact_id", "path", {"type": "string", "minLength": 1}),
                    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000}),
                ],
                404,
            )
        },
        "/v1/rollups": {"get": _op("Job status and next fire times", ref("Rollups"), [])},
        "/v1/rollups/{job}/run": {
            "post": _op(
                "Run a job now (admin); rollup jobs take an optional backfill window, checked by"
                " the rollup guard (409 when every window is refused)",
                ref("RollupRun"),
                [job, _param("start", "query", _TIME_PARAM), _param("end", "query", _TIME_PARAM)],
                404,
                409,
            )
        },
        "/metrics": {"get": metrics, "head": _head("Prometheus exposition headers, no body")},
        "/openapi.json": {"get": _op("This document", {"type": "object"}, [])},
        "/healthz": {"get": _op("Liveness", ref("Status"), []), "head": _head("Liveness")},
        "/readyz": {"get": _op("Readiness", ref("Status"), [], 503)},
    }


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "voxmon", "version": "1", "description": "Voice-pipeline monitor"},
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
