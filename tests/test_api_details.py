"""Issue 12's API details: artifact listing filters and completed notes, organisations seen
but unnamed, ``period_end`` on history rows, and ``HEAD`` on ``/metrics`` and ``/healthz``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import make_event
from tests.queries_data import RANGE, get, loaded
from tests.tools import FakeClock


def note(artifact: str, event_type: str, minutes_ago: int, clock: FakeClock, **kw: Any) -> Any:
    when = clock.now() - timedelta(minutes=minutes_ago)
    return make_event(event_type=event_type, artifact_id=artifact, timestamp=when.isoformat(), **kw)


async def notes(start_app: Any, clock: FakeClock) -> Any:
    client = await start_app()
    events = [
        note("a-done", "artifact_received", 9, clock, org_id="org-a"),
        note("a-done", "artifact_completed", 8, clock, org_id="org-a"),
        note("b-done", "artifact_received", 9, clock, org_id="org-b"),
        note("b-done", "artifact_completed", 7, clock, org_id="org-b"),
        note("a-trans", "transcription_started", 5, clock, org_id="org-a"),
        note("a-draft", "draft_generation_started", 5, clock, org_id="org-a"),
        note("b-trans", "transcription_started", 5, clock, org_id="org-b"),
        note("b-fail", "transcription_failed", 4, clock, org_id="org-b"),
    ]
    assert (await client.post("/v1/events", json=events)).status == 200
    return client


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"state": "completed"}, ["a-done", "b-done"]),
        ({"state": "completed", "org_id": "org-b"}, ["b-done"]),
        ({"state": "in_flight", "org_id": "org-a"}, ["a-draft", "a-trans"]),
        ({"state": "in_flight", "stage": "transcription"}, ["a-trans", "b-trans"]),
        ({"state": "in_flight", "stage": "transcription", "org_id": "org-b"}, ["b-trans"]),
        ({"state": "failed", "org_id": "org-b", "stage": "transcription"}, ["b-fail"]),
        ({"state": "failed", "org_id": "org-a"}, []),
    ],
)
async def test_artifacts_listing_filters(
    start_app: Any, clock: FakeClock, params: dict[str, str], expected: list[str]
) -> None:
    client = await notes(start_app, clock)
    body = await get(client, "/v1/artifacts", **params)
    assert [a["artifact_id"] for a in body["artifacts"]] == expected
    assert body["state"] == params["state"]


async def test_artifacts_completed_pages_with_the_filter(start_app: Any, clock: FakeClock) -> None:
    client = await notes(start_app, clock)
    first = await get(client, "/v1/artifacts", state="completed", limit=1)
    assert ([a["artifact_id"] for a in first["artifacts"]], first["next_cursor"]) == (
        ["a-done"],
        "a-done",
    )
    rest = await get(client, "/v1/artifacts", state="completed", limit=1, cursor="a-done")
    assert ([a["artifact_id"] for a in rest["artifacts"]], rest["next_cursor"]) == (
        ["b-done"],
        None,
    )
    assert rest["artifacts"][0]["status"] == "completed"


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({}, "state", "in_flight, failed, stuck, completed"),
        ({"state": "done"}, "state", "in_flight, failed, stuck, completed"),
        ({"state": "completed", "stage": "typing"}, "stage", "transcription"),
        ({"state": "completed", "org_id": ""}, "org_id", "1 to 128"),
    ],
)
async def test_artifacts_listing_rejects_bad_filters(
    start_app: Any, params: dict[str, str], field: str, fragment: str
) -> None:
    client = await start_app()
    response = await client.get("/v1/artifacts", params=params)
    assert response.status == 400
    error = (await response.json())["error"]
    assert (error["details"][0]["field"], fragment in error["message"]) == (field, True)


async def test_orgs_lists_every_seen_org_named_or_not(start_app: Any, clock: FakeClock) -> None:
    client = await notes(start_app, clock)
    assert (await client.put("/v1/orgs/org-b", json={"name": "Beta Coaching"})).status == 200
    assert (await client.put("/v1/orgs/org-z", json={"name": "Zeta (no events)"})).status == 200
    assert await get(client, "/v1/orgs") == {
        "orgs": [
            {"org_id": "org-a", "name": None, "named": False},
            {"org_id": "org-b", "name": "Beta Coaching", "named": True},
            {"org_id": "org-z", "name": "Zeta (no events)", "named": True},
        ],
        "next_cursor": None,
    }
    page = await get(client, "/v1/orgs", limit=2)
    assert ([o["org_id"] for o in page["orgs"]], page["next_cursor"]) == (["org-a", "org-b"],
                                                                          "org-b")  # fmt: skip
    rest = await get(client, "/v1/orgs", limit=2, cursor="org-b")
    assert [o["org_id"] for o in rest["orgs"]] == ["org-z"]
    assert await get(client, "/v1/orgs/org-a") == {"org_id": "org-a", "name": None, "named": False}
    assert (await get(client, "/v1/orgs/org-b"))["named"] is True
    missing = await client.get("/v1/orgs/org-q")
    assert missing.status == 404
    assert "never seen" in (await missing.json())["error"]["message"]


async def test_history_rows_carry_period_end(start_app: Any) -> None:
    client = await loaded(start_app)
    daily = await get(client, "/v1/metrics/history", **RANGE)
    assert [(r["period_start"], r["period_end"]) for r in daily["rows"]] == [
        ("2026-11-26T00:00:00.000Z", "2026-11-27T00:00:00.000Z"),
        ("2026-11-27T00:00:00.000Z", "2026-11-28T00:00:00.000Z"),
    ]
    hourly = await get(client, "/v1/metrics/history", **{**RANGE, "period": "hourly"})
    first = hourly["rows"][0]  # the first hour with events
    assert (first["period_start"], first["period_end"]) == (
        "2026-11-26T12:00:00.000Z",
        "2026-11-26T13:00:00.000Z",
    )


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
async def test_head_answers_200_without_a_body(start_app: Any, path: str) -> None:
    client = await start_app()
    response = await client.head(path)
    assert response.status == 200
    assert await response.read() == b""
    get_response = await client.get(path)
    assert response.headers["Content-Type"] == get_response.headers["Content-Type"]


async def test_head_metrics_needs_the_metrics_scope(start_app: Any) -> None:
    from exporter.tokens import Token

    client = await start_app(tokens=(Token("reader", "r" * 32, frozenset({"read"})),))
    response = await client.head("/metrics", headers={"Authorization": "Bearer " + "r" * 32})
    assert response.status == 403
    assert (await client.head("/healthz")).status == 200


async def test_api_details_put_org_refuses_a_blank_id_like_ingest(start_app: Any) -> None:
    client = await start_app()
    response = await client.put("/v1/orgs/%20%20", json={"name": "Blank"})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["details"][0]["field"] == "org_id"
    assert "not blank" in error["details"][0]["message"]
    listed = await (await client.get("/v1/orgs")).json()
    assert listed["orgs"] == []


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/events", "before=1-1&before=2-2"),
        ("/v1/metrics/history", "period=daily&period=hourly&start=0&end=86400000"),
        ("/v1/artifacts", "state=failed&state=completed"),
    ],
)
async def test_api_details_a_repeated_parameter_is_a_400_naming_it(
    start_app: Any, path: str, query: str
) -> None:
    client = await start_app()
    response = await client.get(f"{path}?{query}")
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["details"][0]["field"] == query.split("=")[0]
    assert "more than once" in error["details"][0]["message"]
