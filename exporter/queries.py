"""Read-side HTTP handlers: snapshot history and breakdowns, the organisation registry,
artifact state and timelines, rollup job status and manual runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from aiohttp import web

from exporter.api import json_response, read_body, services
from exporter.artifacts import FAILED, IN_FLIGHT, ArtifactState
from exporter.errors import BadRequest, NotFound
from exporter.http.params import Range, bad, parse_int, parse_org, parse_range, reject_unknown
from exporter.storage.sqlite import artifacts as artifact_rows
from exporter.storage.sqlite import snapshots as snapshot_rows
from exporter.storage.sqlite.database import Database, in_transaction
from exporter.storage.sqlite.job_runs import JobRun
from exporter.timestamps import datetime_to_ms, format_rfc3339


class Reports(Protocol):
    """Report builders supplied by the composition root (they live in ``rollup``)."""

    def history(self, rows: list[snapshot_rows.SnapshotRow]) -> list[dict[str, Any]]: ...

    def stages(self, rows: list[snapshot_rows.SnapshotRow]) -> list[dict[str, Any]]: ...

    def orgs(
        self,
        totals: list[snapshot_rows.OrgTotals],
        digests: dict[str, list[bytes]],
        names: dict[str, str],
    ) -> list[dict[str, Any]]: ...


@dataclass(slots=True)
class ReadSide:
    """What the read handlers need, filled in at start-up by ``app``."""

    db: Database
    read_db: Database
    reports: Reports
    jobs: Callable[[], Awaitable[list[dict[str, Any]]]]
    run_job: Callable[[str, Range | None], Awaitable[tuple[JobRun, list[dict[str, Any]]]]]
    """Runs a job now; returns its run and the windows the rollup guard refused."""


_RANGE = ("period", "start", "end")


def _side(request: web.Request) -> ReadSide:
    side = services(request).read_side
    assert isinstance(side, ReadSide), "the read side is wired at start-up"
    return side


def _max_rows(request: web.Request) -> int:
    return services(request).settings.max_range_rows


def _range_body(found: Range, org_id: str | None) -> dict[str, Any]:
    return {
        "period": found.period,
        "start": format_rfc3339(found.start_ms),
        "end": format_rfc3339(found.end_ms),
        "scope": "org" if org_id else "platform",
        "org_id": org_id,
    }


async def _scope_rows(
    request: web.Request,
) -> tuple[dict[str, Any], list[snapshot_rows.SnapshotRow]]:
    """Parse ``period/start/end[/org_id]`` and read that one scope's snapshots (no org_id
    = platform rows only, never a mix); returns the response head and the rows."""
    reject_unknown(request.query, (*_RANGE, "org_id"))
    found, org_id = parse_range(request.query, _max_rows(request)), parse_org(request.query)
    rows = await _side(request).read_db.run(
        snapshot_rows.snapshot_rows, found.period, found.start_ms, found.end_ms, org_id or ""
    )
    return _range_body(found, org_id), rows


async def get_history(request: web.Request) -> web.Response:
    """Snapshots of one scope, ascending, with parts and derived fields."""
    head, rows = await _scope_rows(request)
    return json_response({**head, "rows": _side(request).reports.history(rows)})


async def get_stages(request: web.Request) -> web.Response:
    """Per stage over the range, from merged parts and digests of one scope."""
    head, rows = await _scope_rows(request)
    return json_response({**head, "stages": _side(request).reports.stages(rows)})


async def get_org_breakdown(request: web.Request) -> web.Response:
    """Per organisation over the range, busiest first; three queries whatever the count."""
    reject_unknown(request.query, (*_RANGE, "limit"))
    found = parse_range(request.query, _max_rows(request))
    limit = parse_int("limit", request.query.get("limit", "100"), 1, 1000)
    side = _side(request)
    body = await side.read_db.run(_org_breakdown, found, limit, side.reports)
    return json_response({**_range_body(found, None), "orgs": body})


def _org_breakdown(conn: Any, found: Range, limit: int, reports: Reports) -> list[dict[str, Any]]:
    totals = snapshot_rows.org_totals(conn, found.period, found.start_ms, found.end_ms, limit)
    ids = [t.org_id for t in totals]
    digests = snapshot_rows.end_to_end_digests(
        conn, found.period, found.start_ms, found.end_ms, ids
    )
    return reports.orgs(totals, digests, artifact_rows.org_names(conn, ids))


class _OrgName(msgspec.Struct, forbid_unknown_fields=True):
    name: str


async def put_org(request: web.Request) -> web.Response:
    """Set an organisation's display name (admin)."""
    org_id = request.match_info["org_id"]
    if not 1 <= len(org_id) <= 128:
        raise bad("org_id", "must be 1 to 128 characters")
    try:
        settings = services(request).settings
        raw = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
        body = msgspec.json.decode(raw, type=_OrgName)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"body: {exc}", [{"field": "name", "message": str(exc)}]) from None
    if not 1 <= len(body.name) <= 200:
        raise bad("name", "must be 1 to 200 characters")
    now_ms = datetime_to_ms(services(request).clock.now())
    await _side(request).db.run(
        in_transaction, lambda c: artifact_rows.put_org_name(c, org_id, body.name, now_ms)
    )
    return json_response({"org_id": org_id, "name": body.name})


async def get_orgs(request: web.Request) -> web.Response:
    reject_unknown(request.query, ())
    names = await _side(request).read_db.run(artifact_rows.org_names)
    return json_response({"orgs": [{"org_id": k, "name": v} for k, v in names.items()]})


async def get_org(request: web.Request) -> web.Response:
    reject_unknown(request.query, ())
    org_id = request.match_info["org_id"]
    names = await _side(request).read_db.run(artifact_rows.org_names, [org_id])
    if org_id not in names:
        raise NotFound(f"no organisation {org_id!r} is registered")
    return json_response({"org_id": org_id, "name": names[org_id]})


_STATES = ("in_flight", "failed", "stuck")


async def get_artifacts(request: web.Request) -> web.Response:
    """Notes by state, ordered by id; ``cursor`` is the last id of the previous page."""
    reject_unknown(request.query, ("state", "limit", "cursor"))
    state = request.query.get("state", "")
    if state not in _STATES:
        raise bad("state", f"required; one of {', '.join(_STATES)}")
    limit = parse_int("limit", request.query.get("limit", "100"), 1, 1000)
    svc = services(request)
    now_ms = datetime_to_ms(svc.clock.now())
    idle_before = now_ms - svc.settings.stuck_after_s * 1000 if state == "stuck" else None
    status = FAILED if state == "failed" else IN_FLIGHT
    found = await _side(request).read_db.run(
        artifact_rows.list_states, status, request.query.get("cursor"), limit + 1, idle_before
    )
    page = found[:limit]
    return json_response({
        "state": state,
        "artifacts": [_artifact_json(s, now_ms) for s in page],
        "next_cursor": page[-1].artifact_id if len(found) > limit else None,
    })  # fmt: skip


def _artifact_json(state: ArtifactState, now_ms: int) -> dict[str, Any]:
    return {
        "artifact_id": state.artifact_id,
        "org_id": state.org_id,
        "status": state.status,
        "current_stage": state.current_stage,
        "last_event_type": state.last_event_type,
        "last_event_at": format_rfc3339(state.last_event_ms),
        "first_event_at": format_rfc3339(state.first_event_ms),
        "age_s": (now_ms - state.first_event_ms) / 1000,
        "idle_s": (now_ms - state.last_event_ms) / 1000,
        "failed_stage": state.failed_stage,
        "error_code": state.error_code,
        "awaiting_disambiguation": state.awaiting_disambiguation,
    }


async def get_timeline(request: web.Request) -> web.Response:
    """A note's events in event-time order."""
    reject_unknown(request.query, ("limit",))
    artifact_id = request.match_info["artifact_id"]
    limit = parse_int("limit", request.query.get("limit", "1000"), 1, 10_000)
    rows = await _side(request).read_db.run(artifact_rows.timeline, artifact_id, limit)
    if not rows:
        raise NotFound(f"no events stored for artifact {artifact_id!r}")
    for row in rows:
        row["timestamp"] = format_rfc3339(row.pop("ts_ms"))
        row["metadata"] = msgspec.json.decode(row["metadata"]) if row["metadata"] else None
    return json_response({"artifact_id": artifact_id, "events": rows})


async def get_rollups(request: web.Request) -> web.Response:
    reject_unknown(request.query, ())
    return json_response({"jobs": await _side(request).jobs()})


async def post_rollup_run(request: web.Request) -> web.Response:
    """Run a job now (admin); rollup jobs take an optional ``period``-less window
    ``start``/``end`` to backfill every hour or day starting in it, through the rollup
    guard: refused windows are listed in ``skipped``; 409 when every window is refused,
    400 for a window that starts in the future."""
    reject_unknown(request.query, ("start", "end"))
    job = request.match_info["job"]
    window = None
    if "start" in request.query or "end" in request.query:
        if not job.startswith("rollup-"):
            raise bad("start", f"{job} takes no window")
        period = "hourly" if job == "rollup-hourly" else "daily"
        window = parse_range({**request.query, "period": period}, _max_rows(request))
        now_ms = datetime_to_ms(services(request).clock.now())
        if window.start_ms > now_ms:
            raise bad("start", f"is in the future ({format_rfc3339(window.start_ms)}); nothing"
                      " to roll up there yet")  # fmt: skip
    run, skipped = await _side(request).run_job(job, window)
    body = job_run_json(run)
    body["skipped"] = skipped
    return json_response(body)


def job_run_json(run: JobRun) -> dict[str, Any]:
    return {
        "job": run.job,
        "last_run": format_rfc3339(run.last_run_ms),
        "result": run.last_result,
        "error": run.last_error,
        "last_success": format_rfc3339(run.last_success_ms) if run.last_success_ms else None,
        "duration_s": run.duration_s,
        "rows_written": run.rows_written,
        "windows": run.windows,
        "trigger": run.trigger,
    }
