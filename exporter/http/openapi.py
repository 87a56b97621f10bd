"""The OpenAPI 3.1 document served at ``/openapi.json``, generated: every schema comes from
the request and response types (``msgspec.json.schema_components``), every operation from
the ``OPERATIONS`` table below (path, parameters as types, request body, answer, errors).

The event schema is ``model.WireEvent`` as the decoder reads it, with the rules that live
in ``validation.py`` (catalog enums, the open ``metadata`` object) added on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from exporter.catalog import EVENT_TYPES, STAGES
from exporter.http import responses as r
from exporter.http.feed import Feed
from exporter.http.orgs import OrgName
from exporter.http.summary import Summary
from exporter.jobs import JOB_NAMES
from exporter.model import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    Metadata,
    WireEvent,
)

JSON = "application/json"
Schema = dict[str, Any]


def _enum(values: tuple[str, ...] | list[str]) -> Any:
    return Annotated[str, msgspec.Meta(extra_json_schema={"enum": list(values)})]


_DOCUMENTED = {"event_type": _enum(sorted(EVENT_TYPES)), "stage": _enum(STAGES)}


def _event_type() -> Any:
    """``WireEvent``'s fields, with catalog enums and ``metadata`` as the ``Metadata``
    object (the decoder captures it raw; ``validation.py`` checks it)."""
    fields: list[Any] = []
    for f in msgspec.structs.fields(WireEvent):
        if f.name == "metadata":
            fields.append((f.name, Metadata | msgspec.UnsetType, msgspec.UNSET))
            continue
        kind = _DOCUMENTED.get(f.name, f.type)
        if f.name in _DOCUMENTED and not f.required:
            kind = kind | None
        fields.append((f.name, kind) if f.required else (f.name, kind, None))
    return msgspec.defstruct("Event", fields, forbid_unknown_fields=True, module=__name__)


Event: Any = _event_type()
Events: Any = Event | list[Event]
"""``POST /v1/events`` as JSON: one object or an array (also ``application/x-ndjson``)."""

# query and path parameters, as types
OrgId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Time = Annotated[str, msgspec.Meta(description="RFC 3339 with offset, or epoch ms")]
Limit = Annotated[int, msgspec.Meta(ge=1, le=1000)]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: Any
    required: bool = False
    doc: str = ""
    where: Literal["query", "path"] = "query"


def _path(name: str, kind: Any) -> Param:
    return Param(name, kind, True, where="path")


RANGE = (
    Param("period", Literal["hourly", "daily"], True),
    Param("start", Time, True, "inclusive window start"),
    Param("end", Time, True, "exclusive; start < end; max_range_rows windows"),
)
ORG = Param("org_id", OrgId, doc="an organisation; absent = platform rows only")
ONLY_ORG = Param("org_id", OrgId, doc="only this organisation")
CURSOR = Param("cursor", str, doc="last id of previous page")


@dataclass(frozen=True, slots=True)
class Op:
    """One operation: ``ok`` is the 200 body's type; 400, 401 and 403 answer ``Error``
    everywhere, ``errors`` lists the other codes it may answer."""

    method: str
    path: str
    summary: str
    ok: Any
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    body: Any = None
    media: str = JSON


OPERATIONS: tuple[Op, ...] = (
    Op("post", "/v1/events", "Ingest events (JSON object or array; also application/x-ndjson,"
       " gzip); 400 with the same shape when no item is valid", r.IngestResult,
       errors=(413, 415, 503), body=Events),
    Op("get", "/v1/events", "Recent events, newest received first, within event retention,"
       " cursor-paginated", Feed, (Param("limit", Limit), ONLY_ORG,
       Param("event_type", _enum(sorted(EVENT_TYPES))), Param("artifact_id", OrgId),
       Param("before", str, doc="the previous page's next"))),
    Op("get", "/v1/metrics/summary", "One row merged over a range (daily snapshots for whole"
       " days, hourly at the edges; bounds widen to whole hours), and the hours not covered",
       Summary, (Param("start", Time, True, "inclusive"),
                 Param("end", Time, True, "exclusive; start < end"), ORG)),
    Op("get", "/v1/metrics/realtime", "60-minute live counters (404 org_not_live beyond"
       " max_live_orgs)", r.Realtime, (ORG,), (404,)),
    Op("get", "/v1/metrics/history", "Snapshots of one scope, ascending", r.History,
       (*RANGE, ORG)),
    Op("get", "/v1/metrics/stages", "Per-stage breakdown over a range", r.Stages, (*RANGE, ORG)),
    Op("get", "/v1/metrics/orgs", "Per-organisation breakdown over a range", r.OrgBreakdown,
       (*RANGE, Param("limit", Limit))),
    Op("get", "/v1/orgs", "Organisations seen or named, with their names or null", r.Orgs,
       (Param("limit", Annotated[int, msgspec.Meta(ge=1, le=10_000)]), CURSOR)),
    Op("get", "/v1/orgs/{org_id}", "One organisation's display name", r.Org,
       (_path("org_id", OrgId),), (404,)),
    Op("put", "/v1/orgs/{org_id}", "Set a display name (admin)", r.Org,
       (_path("org_id", OrgId),), (413,), body=OrgName),
    Op("get", "/v1/artifacts", "Notes by state, cursor-paginated", r.Artifacts, (
        Param("state", Literal["in_flight", "failed", "stuck", "completed"], True),
        Param("limit", Limit), CURSOR, ONLY_ORG,
        Param("stage", _enum(STAGES), doc="the note's current stage"))),
    Op("get", "/v1/artifacts/{artifact_id}/events", "A note's events, ascending", r.Timeline, (
        _path("artifact_id", Annotated[str, msgspec.Meta(min_length=1)]),
        Param("limit", Annotated[int, msgspec.Meta(ge=1, le=10_000)])), (404,)),
    Op("get", "/v1/rollups", "Job status and next fire times", r.Rollups),
    Op("post", "/v1/rollups/{job}/run", "Run a job now (admin); rollup jobs take an optional"
       " backfill window, checked by the rollup guard (409 when every window is refused)",
       r.RollupRun, (_path("job", _enum(JOB_NAMES)), Param("start", Time), Param("end", Time)),
       (404, 409)),
    Op("get", "/metrics", "Prometheus exposition (OpenMetrics by Accept)", str,
       media="text/plain"),
    Op("head", "/metrics", "Prometheus exposition headers, no body", None),
    Op("get", "/", "Status page (HTML; no data until its script reads the API)", str,
       media="text/html"),
    Op("get", "/openapi.json", "This document", dict[str, Any]),
    Op("get", "/healthz", "Liveness", r.Status),
    Op("head", "/healthz", "Liveness, no body", None),
    Op("get", "/readyz", "Readiness", r.Status, errors=(503,)),
)  # fmt: skip

_METADATA = {
    "description": (
        "Known keys are validated as listed; any other key is stored as sent and shown in"
        f" the artifact timeline. At most {MAX_METADATA_KEYS} keys of at most"
        f" {MAX_METADATA_KEY_CHARS} characters, {MAX_METADATA_BYTES} bytes of JSON as"
        f" sent, values nested at most {MAX_METADATA_DEPTH} levels."
    ),
    "maxProperties": MAX_METADATA_KEYS,
    "propertyNames": {"maxLength": MAX_METADATA_KEY_CHARS},
    "additionalProperties": True,
}


class _Schemas:
    """Schemas of every type the table names, generated in one pass so each Struct is one
    component referenced everywhere."""

    def __init__(self, types: list[Any]) -> None:
        found, self.components = msgspec.json.schema_components(
            types, ref_template="#/components/schemas/{name}"
        )
        self._of = {_key(t): s for t, s in zip(types, found, strict=True)}
        self.components["Metadata"].update(_METADATA)

    def __getitem__(self, kind: Any) -> Schema:
        return self._of[_key(kind)]


def _key(kind: Any) -> str:
    return repr(kind)


def _types() -> list[Any]:
    found: dict[str, Any] = {_key(r.Error): r.Error}
    for op in OPERATIONS:
        for kind in (op.ok, op.body, *(p.type for p in op.params)):
            if kind is not None:
                found.setdefault(_key(kind), kind)
    return list(found.values())


def _parameter(param: Param, schemas: _Schemas) -> Schema:
    return {
        "name": param.name,
        "in": param.where,
        "required": param.required,
        "schema": schemas[param.type],
        "description": param.doc,
    }


def _content(schema: Schema, media: str = JSON) -> Schema:
    return {"content": {media: {"schema": schema}}}


def _operation(op: Op, schemas: _Schemas) -> Schema:
    error = _content(schemas[r.Error])
    ok = _content(schemas[op.ok], op.media) if op.ok is not None else {}
    responses: Schema = {"200": {"description": "OK", **ok}}
    for code in (400, 401, 403, *op.errors):
        responses[str(code)] = {"description": "error", **error}
    responses["default"] = {"description": "any other error", **error}
    if op.body is Events:
        either = {"anyOf": [schemas[op.ok], schemas[r.Error]]}
        responses["400"] = {"description": "nothing valid", **_content(either)}
    out: Schema = {
        "summary": op.summary,
        "parameters": [_parameter(p, schemas) for p in op.params],
        "responses": responses,
    }
    if op.body is not None:
        out["requestBody"] = {"required": True, **_content(schemas[op.body])}
    return out


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    schemas = _Schemas(_types())
    paths: dict[str, Schema] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "voxmon", "version": "1", "description": "Voice-pipeline monitor"},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }
