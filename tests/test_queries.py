"""The read API on a hand-built dataset: two orgs, no-org events, two days of data."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from exporter.http import artifacts
from exporter.http.context import BACKEND
from exporter.timestamps import format_rfc3339
from tests.backends import both, sqlite_only
from tests.conftest import make_event
from tests.queries_data import DAY1, RANGE, at, get, loaded
from tests.scrape import domain_samples, scrape
from tests.tools import FakeClock

pytestmark = both


async def test_queries_history_platform_and_org(start_app: Any) -> None:
    client = await loaded(start_app)
    body = await get(client, "/v1/metrics/history", **RANGE)
    assert [r["period_start"] for r in body["rows"]] == [
        "2026-11-26T00:00:00.000Z",
        "2026-11-27T00:00:00.000Z",
    ]
    day1, day2 = body["rows"]
    assert (
        day1["parts"]["artifacts_received"],
        day1["parts"]["artifacts_completed"],
        day1["parts"]["artifacts_failed"],
    ) == (4, 1, 1)
    assert day1["derived"]["failure_rate"] == 0.5
    assert day1["derived"]["avg_cost_per_artifact_usd"] == 0.125
    assert day1["parts"]["stages"]["transcription"]["latency"]["count"] == 10
    assert day2["parts"]["stages"]["transcription"]["succeeded"] == 2
    org = await get(client, "/v1/metrics/history", **RANGE, org_id="org-a")
    assert [r["period_start"][:10] for r in org["rows"]] == ["2026-11-26"]
    assert org["rows"][0]["parts"]["artifacts_received"] == 2
    assert org["scope"] == "org"


async def test_queries_stage_p95_over_two_days_is_from_merged_digests(start_app: Any) -> None:
    client = await loaded(start_app)
    body = await get(client, "/v1/metrics/stages", **RANGE)
    transcription = next(s for s in body["stages"] if s["stage"] == "transcription")
    assert (transcription["attempts"], transcription["successes"], transcription["failures"]) == (
        3,
        12,
        1,
    )
    assert transcription["failure_rate"] == pytest.approx(1 / 13)
    assert transcription["latency_avg_ms"] == pytest.approx(5000 / 12)
    assert transcription["latency_p50_ms"] == pytest.approx(100, rel=0.01)
    assert transcription["latency_p95_ms"] == pytest.approx(2000, rel=0.01)
    days = await get(client, "/v1/metrics/history", **RANGE)
    daily_p95 = [r["derived"]["transcription_latency_p95_ms"] for r in days["rows"]]
    assert sum(daily_p95) / 2 == pytest.approx(1050, rel=0.01)  # the wrong answer
    org_b = await get(client, "/v1/metrics/stages", **RANGE, org_id="org-b")
    b = next(s for s in org_b["stages"] if s["stage"] == "transcription")
    assert (b["successes"], b["failures"], b["latency_p95_ms"]) == (2, 0, 2000.0)


async def test_queries_org_breakdown_with_names(start_app: Any) -> None:
    client = await loaded(start_app)
    put = await client.put("/v1/orgs/org-a", json={"name": "Acme Coaching"})
    assert put.status == 200
    body = await get(client, "/v1/metrics/orgs", **RANGE)
    assert body["orgs"] == [
        {
            "org_id": "org-a",
            "name": "Acme Coaching",
            "received": 2,
            "completed": 1,
            "failed": 0,
            "failure_rate": 0.0,
            "ai_cost_usd": 0.5,
            "end_to_end_avg_ms": 5000.0,
            "end_to_end_p95_ms": 5000.0,
        },
        {
            "org_id": "org-b",
            "name": None,
            "received": 1,
            "completed": 0,
            "failed": 1,
            "failure_rate": 1.0,
            "ai_cost_usd": 0.0,
            "end_to_end_avg_ms": 0.0,
            "end_to_end_p95_ms": 0.0,
        },
    ]
    assert [(o["org_id"], o["name"]) for o in (await get(client, "/v1/orgs"))["orgs"]] == [
        ("org-a", "Acme Coaching"),
        ("org-b", None),
    ]
    assert (await client.get("/v1/orgs/org-c")).status == 404


async def org_statements(start_app: Any, orgs: int) -> list[str]:
    client = await start_app()
    events = [
        make_event(org_id=f"org-{i:03d}", artifact_id=f"n{i}", timestamp=at(DAY1, i % 60))
        for i in range(orgs)
    ]
    await client.post("/v1/events", json=events)
    await client.post("/v1/rollups/rollup-hourly/run")
    await client.post("/v1/rollups/rollup-daily/run")
    statements: list[str] = []
    read_db = client.app[BACKEND].reads
    await read_db.trace(statements.append)
    body = await get(client, "/v1/metrics/orgs", **RANGE, limit=1000)
    await read_db.trace(None)
    assert len(body["orgs"]) == orgs
    await client.close()
    return [statement.split()[0] for statement in statements]


@sqlite_only
async def test_queries_org_breakdown_query_count_is_constant(start_app: Any, tmp_path: Any) -> None:
    """Six queries, however many orgs, in one read transaction (one snapshot): three choose
    the form of the totals (the period's write generation, stored orgs, range entries), then totals,
    digests, names."""
    three = await org_statements(start_app, 3)
    (tmp_path / "voxmon.db").unlink()
    three_hundred = await org_statements(start_app, 300)
    assert three == three_hundred == [
        "BEGIN", "SELECT", "SELECT", "SELECT", "WITH", "SELECT", "SELECT", "COMMIT"]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "params", "param", "fragment"),
    [
        ("/v1/metrics/history", {**RANGE, "orgid": "x"}, "orgid", "unknown parameter"),
        ("/v1/metrics/history", {**RANGE, "start": RANGE["end"]}, "start", "before end"),
        ("/v1/metrics/stages", {**RANGE, "start": "yesterday"}, "start", "RFC 3339"),
        (
            "/v1/metrics/stages",
            {**RANGE, "end": "\uff11\uff17\uff19\uff15" + "\uff10" * 9},
            "end",
            "RFC 3339",
        ),  # fullwidth digits are not epoch ms
        ("/v1/metrics/stages", {**RANGE, "end": "9" * 5000}, "end", "ms is outside 0001-01-01"),
        ("/v1/metrics/orgs", {**RANGE, "period": "weekly"}, "period", "hourly, daily"),
        ("/v1/metrics/orgs", {**RANGE, "limit": "0"}, "limit", "from 1 to 1000"),
        ("/v1/metrics/history", {**RANGE, "period": "hourly"}, "end", "at most 10"),
        ("/v1/artifacts", {"state": "lost"}, "state", "in_flight, failed, stuck"),
    ],
)
async def test_queries_reject_bad_parameters(
    start_app: Any, path: str, params: dict[str, str], param: str, fragment: str
) -> None:
    client = await start_app(max_range_rows=10)
    response = await client.get(path, params=params)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["details"][0]["field"] == param
    assert fragment in error["message"]


async def test_queries_times_as_epoch_ms(start_app: Any) -> None:
    client = await loaded(start_app)
    body = await get(
        client, "/v1/metrics/history", period="daily", start="1795651200000", end="1795824000000"
    )
    assert body["start"] == "2026-11-26T00:00:00.000Z"
    assert len(body["rows"]) == 2


def note(artifact: str, event_type: str, minutes_ago: int, clock: FakeClock, **kw: Any) -> Any:
    when = clock.now() - timedelta(minutes=minutes_ago)
    return make_event(event_type=event_type, artifact_id=artifact, timestamp=when.isoformat(), **kw)


async def test_queries_artifact_states_and_gauges(start_app: Any, clock: FakeClock) -> None:
    client = await start_app()
    events = [
        note("n-claims", "artifact_received", 9, clock),
        note("n-claims", "transcription_started", 8, clock),
        note("n-claims", "transcription_completed", 7, clock),
        note("n-claims", "claims_extraction_started", 6, clock),
        note("n-claims", "claims_extraction_failed", 5, clock, error_code="E_LLM"),
        note("n-stuck", "artifact_received", 17, clock),
        note("n-stuck", "transcription_started", 16, clock),
        note("n-done", "artifact_received", 3, clock),
        note("n-done", "artifact_completed", 2, clock),
        note("n-live", "artifact_received", 1, clock),
        note("n-dis", "entity_needs_disambiguation", 3, clock),
    ]
    assert (await client.post("/v1/events", json=events)).status == 200
    failed = await get(client, "/v1/artifacts", state="failed")
    assert [
        (a["artifact_id"], a["failed_stage"], a["error_code"]) for a in failed["artifacts"]
    ] == [("n-claims", "claims_extraction", "E_LLM")]
    stuck = await get(client, "/v1/artifacts", state="stuck")
    assert [(a["artifact_id"], a["idle_s"]) for a in stuck["artifacts"]] == [("n-stuck", 960.0)]
    in_flight = await get(client, "/v1/artifacts", state="in_flight")
    assert [a["artifact_id"] for a in in_flight["artifacts"]] == ["n-dis", "n-live", "n-stuck"]
    page = await get(client, "/v1/artifacts", state="in_flight", limit=2)
    assert [a["artifact_id"] for a in page["artifacts"]] == ["n-dis", "n-live"]
    assert page["next_cursor"] == "n-live"
    rest = await get(client, "/v1/artifacts", state="in_flight", limit=2, cursor="n-live")
    assert ([a["artifact_id"] for a in rest["artifacts"]], rest["next_cursor"]) == (
        ["n-stuck"],
        None,
    )
    samples = domain_samples(await scrape(client))
    inflight = {
        dict(labels)["stage"]: value
        for (name, labels), value in samples.items()
        if name == "voice_pipeline_inflight_artifacts"
    }
    assert inflight == {
        "ingestion": 1.0,
        "transcription": 1.0,
        "claims_extraction": 0.0,
        "entity_resolution": 1.0,
        "draft_generation": 0.0,
        "confirmation": 0.0,
    }
    assert samples[("voice_pipeline_stuck_artifacts", ())] == 1.0
    assert samples[("voice_pipeline_disambiguation_backlog", ())] == 1.0
    clock.advance(timedelta(minutes=15))  # n-live and n-dis now idle for 15+ minutes too
    assert domain_samples(await scrape(client))[("voice_pipeline_stuck_artifacts", ())] == 3.0


async def test_queries_timeline_ascending(start_app: Any, clock: FakeClock) -> None:
    client = await start_app()
    events = [
        note("n1", "transcription_completed", 2, clock, metadata={"confidence": 0.9}),
        note("n1", "artifact_received", 4, clock),
        note("n1", "transcription_started", 3, clock),
    ]
    await client.post("/v1/events", json=events)
    body = await get(client, "/v1/artifacts/n1/events")
    assert [e["event_type"] for e in body["events"]] == [
        "artifact_received",
        "transcription_started",
        "transcription_completed",
    ]
    assert body["events"][2]["duration_ms"] == 60000.0
    assert body["events"][2]["metadata"] == {"confidence": 0.9}
    assert body["events"][0]["timestamp"] == "2026-11-28T09:56:00.000Z"
    assert (await client.get("/v1/artifacts/nope/events")).status == 404


async def test_queries_timeline_is_built_on_the_reading_thread(
    start_app: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to 10,000 rows are formatted and encoded where they are read, not on the event
    loop: every timestamp of the answer is formatted off the loop's thread."""
    client = await start_app()
    events = [
        note("n1", "artifact_received", 4, clock),
        note("n1", "transcription_started", 3, clock),
    ]
    await client.post("/v1/events", json=events)
    threads: list[int] = []

    def spy(ms: int) -> str:  # records where the formatting runs; formats as before
        threads.append(threading.get_ident())
        return format_rfc3339(ms)

    monkeypatch.setattr(artifacts, "format_rfc3339", spy)
    body = await get(client, "/v1/artifacts/n1/events")
    assert [e["timestamp"] for e in body["events"]] == [
        "2026-11-28T09:56:00.000Z",
        "2026-11-28T09:57:00.000Z",
    ]
    assert len(threads) == 2 and threading.get_ident() not in threads


async def test_queries_rollup_status_and_backfill(start_app: Any) -> None:
    client = await start_app()
    await client.post("/v1/events", json=[make_event(timestamp=at(DAY1, 5))])
    status = await get(client, "/v1/rollups")
    assert [(j["job"], j["schedule"], j["last_run"]) for j in status["jobs"]] == [
        ("rollup-hourly", "30 * * * *", None),
        ("rollup-daily", "30 1 * * *", None),
        ("cleanup-snapshots", "30 4 * * 0", None),
        ("cleanup-events", "0 5 * * 0", None),
    ]
    response = await client.post(
        "/v1/rollups/rollup-hourly/run",
        params={"start": "2026-11-26T10:30:00Z", "end": "2026-11-26T14:00:00Z"},
    )
    run = await response.json()
    assert (run["result"], run["rows_written"], run["trigger"]) == ("success", 3, "api")
    assert run["windows"].endswith("(2)")  # 12:00 (platform + org) and 13:00
    assert [(s["first"], s["windows"], s["reason"]) for s in run["skipped"]] == [
        ("2026-11-26T10:00:00.000Z", 2, "before_history"),  # the first event is at 12:05
    ]
    status = await get(client, "/v1/rollups")
    assert status["jobs"][0]["last_run"]["rows_written"] == 3
    assert (await client.post("/v1/rollups/nope/run")).status == 404
    bad = await client.post("/v1/rollups/cleanup-events/run", params={"start": "0", "end": "1"})
    assert bad.status == 400


@pytest.mark.parametrize(
    ("start", "end", "status", "reason"),
    [
        ("2026-11-25T00:00:00Z", "2026-11-25T06:00:00Z", 409, "before_history"),
        ("2026-11-28T10:00:00Z", "2026-11-28T10:30:00Z", 409, "open"),  # now is 10:00
        ("9999-01-01T00:00:00Z", "9999-01-02T00:00:00Z", 400, None),
    ],
)
async def test_queries_backfill_refusals_are_client_errors_not_failed_runs(
    start_app: Any, start: str, end: str, status: int, reason: str | None
) -> None:
    """A refused backfill says why and records no run, so it cannot fire the
    rollup-failing alert."""
    client = await start_app()
    await client.post("/v1/events", json=[make_event(timestamp=at(DAY1, 5))])
    response = await client.post(
        "/v1/rollups/rollup-hourly/run", params={"start": start, "end": end}
    )
    body = await response.json()
    assert response.status == status
    if reason:
        assert body["error"]["code"] == "conflict"
        assert [d["reason"] for d in body["error"]["details"]] == [reason]
        assert body["error"]["message"].startswith("nothing to run: every window was refused")
    else:
        assert body["error"]["details"][0]["field"] == "start"
    status_body = await get(client, "/v1/rollups")
    assert status_body["jobs"][0]["last_run"] is None
    metrics = await (await client.get("/metrics")).text()
    assert 'voxmon_rollup_runs_total{job="rollup-hourly",result="failure"} 0.0' in metrics
