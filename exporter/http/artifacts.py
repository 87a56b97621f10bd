"""The artifact read model: notes by state (``/v1/artifacts``) and one note's timeline."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from exporter.artifacts import COMPLETED, FAILED, IN_FLIGHT, ArtifactState
from exporter.catalog import STAGES
from exporter.errors import NotFound
from exporter.http.context import BACKEND, CLOCK, SETTINGS, json_response
from exporter.http.params import bad, parse_int, parse_org, reject_unknown
from exporter.http.responses import Artifact, Artifacts, Timeline, TimelineEvent
from exporter.storage.base import Store
from exporter.timestamps import datetime_to_ms, format_rfc3339

_STATUS = {"in_flight": IN_FLIGHT, "failed": FAILED, "stuck": IN_FLIGHT, "completed": COMPLETED}
"""Listable states and the stored status each reads (stuck: in flight and idle)."""


async def get_artifacts(request: web.Request) -> web.Response:
    """Notes by state, optionally of one organisation or current stage, ordered by id;
    ``cursor`` is the last id of the previous page."""
    query = request.query
    reject_unknown(query, ("state", "limit", "cursor", "org_id", "stage"))
    state = query.get("state", "")
    if state not in _STATUS:
        raise bad("state", f"required; one of {', '.join(_STATUS)}")
    stage = query.get("stage")
    if stage is not None and stage not in STAGES:
        raise bad("stage", f"unknown stage; one of {', '.join(STAGES)}")
    limit = parse_int("limit", query.get("limit", "100"), 1, 1000)
    org_id, cursor = parse_org(query), query.get("cursor")
    now_ms = datetime_to_ms(request.app[CLOCK].now())
    stuck_ms = request.app[SETTINGS].stuck_after_s * 1000
    idle_before = now_ms - stuck_ms if state == "stuck" else None
    found = await request.app[BACKEND].reads.run(
        lambda s: s.artifacts.list_states(
            _STATUS[state], cursor, limit + 1, idle_before, org_id=org_id, stage=stage
        )
    )
    page = found[:limit]
    return json_response(Artifacts(
        state=state,
        artifacts=[_artifact(s, now_ms) for s in page],
        next_cursor=page[-1].artifact_id if len(found) > limit else None,
    ))  # fmt: skip


def _artifact(state: ArtifactState, now_ms: int) -> Artifact:
    return Artifact(
        artifact_id=state.artifact_id,
        org_id=state.org_id,
        status=state.status,
        current_stage=state.current_stage,
        last_event_type=state.last_event_type,
        last_event_at=format_rfc3339(state.last_event_ms),
        first_event_at=format_rfc3339(state.first_event_ms),
        age_s=(now_ms - state.first_event_ms) / 1000,
        idle_s=(now_ms - state.last_event_ms) / 1000,
        failed_stage=state.failed_stage,
        error_code=state.error_code,
        awaiting_disambiguation=state.awaiting_disambiguation,
    )


async def get_timeline(request: web.Request) -> web.Response:
    """A note's events in event-time order."""
    reject_unknown(request.query, ("limit",))
    artifact_id = request.match_info["artifact_id"]
    limit = parse_int("limit", request.query.get("limit", "1000"), 1, 10_000)
    body = await request.app[BACKEND].reads.run(_timeline_body, artifact_id, limit)
    if body is None:
        raise NotFound(f"no events stored for artifact {artifact_id!r}")
    return web.Response(body=body, content_type="application/json")


def _timeline_body(store: Store, artifact_id: str, limit: int) -> bytes | None:
    """The encoded answer, built on the reading thread (up to 10,000 rows formatted and
    encoded there, not on the event loop); None when nothing is stored for the note."""
    rows = store.events.timeline(artifact_id, limit)
    if not rows:
        return None
    return msgspec.json.encode(Timeline(artifact_id, [_timeline_event(row) for row in rows]))


def _timeline_event(row: dict[str, Any]) -> TimelineEvent:
    """A stored event row: epoch ms as RFC 3339, metadata JSON decoded."""
    ts_ms, metadata = row.pop("ts_ms"), row.pop("metadata")
    decoded = msgspec.json.decode(metadata) if metadata else None
    return TimelineEvent(timestamp=format_rfc3339(ts_ms), metadata=decoded, **row)
