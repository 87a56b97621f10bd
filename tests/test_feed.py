"""``GET /v1/events``: the recent-events feed, newest received first, cursor-paginated,
filtered, bounded by event retention, with precise 400s."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from exporter.tokens import Token
from tests.backends import both
from tests.conftest import make_event
from tests.tools import FakeClock

pytestmark = both


def note(n: int, clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    when = clock.now() - timedelta(seconds=30)
    fields = {"event_id": f"e-{n:03d}", "artifact_id": f"n-{n % 4}", "timestamp": when.isoformat()}
    return make_event(**(fields | overrides))


async def post_one_by_one(client: Any, clock: FakeClock, count: int) -> list[str]:
    """``count`` events, each received a second after the previous one; their ids in
    arrival order."""
    ids = []
    for n in range(count):
        clock.advance(1)
        org = "org-a" if n % 3 else "org-b"
        event_type = "artifact_received" if n % 2 else "transcription_started"
        event = note(n, clock, org_id=org, event_type=event_type)
        assert (await client.post("/v1/events", json=event)).status == 200
        ids.append(event["event_id"])
    return ids


async def feed(client: Any, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/events", params=params)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_feed_limit_returns_the_newest_events(start_app: Any, clock: FakeClock) -> None:
    client = await start_app()
    ids = await post_one_by_one(client, clock, 12)
    body = await feed(client, limit=5)
    assert [e["event_id"] for e in body["events"]] == ids[::-1][:5]
    newest = body["events"][0]
    assert newest["received_at"] == "2026-11-28T10:00:12.000Z"
    assert newest["timestamp"] == "2026-11-28T09:59:42.000Z"
    assert (newest["org_id"], newest["artifact_id"]) == ("org-a", "n-3")
    assert body["next"] is not None


async def test_feed_pagination_walks_every_event_once(start_app: Any, clock: FakeClock) -> None:
    client = await start_app()
    batch = [note(100 + n, clock) for n in range(7)]  # one commit: same received time
    assert (await client.post("/v1/events", json=batch)).status == 200
    ids = await post_one_by_one(client, clock, 10)
    seen: list[str] = []
    body = await feed(client, limit=3)
    while True:
        seen += [e["event_id"] for e in body["events"]]
        if body["next"] is None:
            break
        clock.advance(1)  # a newer event arriving mid-walk is not in the older pages
        await client.post("/v1/events", json=note(900 + len(seen), clock))
        body = await feed(client, limit=3, before=body["next"])
    assert seen[:10] == ids[::-1]
    assert sorted(seen[10:]) == sorted(e["event_id"] for e in batch)
    assert len(seen) == len(set(seen)) == 17


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"org_id": "org-b"}, ["e-009", "e-006", "e-003", "e-000"]),
        ({"event_type": "artifact_received", "org_id": "org-b"}, ["e-009", "e-003"]),
        ({"artifact_id": "n-1"}, ["e-009", "e-005", "e-001"]),
        ({"org_id": "org-z"}, []),
    ],
)
async def test_feed_filters(
    start_app: Any, clock: FakeClock, params: dict[str, str], expected: list[str]
) -> None:
    client = await start_app()
    await post_one_by_one(client, clock, 10)
    body = await feed(client, **params)
    assert ([e["event_id"] for e in body["events"]], body["next"]) == (expected, None)


async def test_feed_shows_only_events_within_retention(start_app: Any, clock: FakeClock) -> None:
    client = await start_app(event_retention_hours=2)
    old = note(1, clock, timestamp=(clock.now() - timedelta(minutes=90)).isoformat())
    assert (await client.post("/v1/events", json=[old, note(2, clock)])).status == 200
    assert [e["event_id"] for e in (await feed(client))["events"]] == ["e-002", "e-001"]
    clock.advance(timedelta(minutes=31))  # e-001's event time is now past the 2 h retention
    assert [e["event_id"] for e in (await feed(client))["events"]] == ["e-002"]


async def test_feed_metadata_as_sent(start_app: Any, clock: FakeClock) -> None:
    client = await start_app()
    meta = {"confidence": 0.5, "vendor": {"x": [1, 2]}}
    await client.post("/v1/events", json=note(1, clock, metadata=meta))
    assert (await feed(client))["events"][0]["metadata"] == meta


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"limit": "0"}, "limit", "from 1 to 1000, got 0"),
        ({"limit": "1001"}, "limit", "from 1 to 1000, got 1001"),
        ({"before": "yesterday"}, "before", "'next' value"),
        ({"before": "1-99999999999999999999"}, "before", "'next' value"),
        ({"before": "\u0663-\u0663"}, "before", "'next' value"),  # Arabic-Indic digits
        ({"before": "1-2", "limit": "\u0663"}, "limit", "expected an integer"),
        ({"limit": " 5"}, "limit", "expected an integer"),
        ({"limit": "+5"}, "limit", "expected an integer"),
        ({"limit": "1_0"}, "limit", "expected an integer"),
        ({"event_type": "note_exploded"}, "event_type", "artifact_received"),
        ({"org_id": "x" * 129}, "org_id", "1 to 128"),
        ({"artifact_id": ""}, "artifact_id", "1 to 128"),
        ({"since": "1"}, "since", "unknown parameter"),
    ],
)
async def test_feed_rejects_bad_parameters(
    start_app: Any, params: dict[str, str], field: str, fragment: str
) -> None:
    client = await start_app()
    response = await client.get("/v1/events", params=params)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["details"][0]["field"] == field
    assert fragment in error["message"]


async def test_feed_needs_read_scope_and_is_not_an_ingest_request(start_app: Any) -> None:
    tokens = (
        Token("ingest", "i" * 32, frozenset({"ingest"})),
        Token("reader", "r" * 32, frozenset({"read"})),
        Token("scraper", "s" * 32, frozenset({"metrics"})),
    )
    client = await start_app(tokens=tokens)
    forbidden = await client.get("/v1/events", headers={"Authorization": "Bearer " + "i" * 32})
    assert forbidden.status == 403
    ok = await client.get("/v1/events", headers={"Authorization": "Bearer " + "r" * 32})
    assert ok.status == 200
    scrape = await client.get("/metrics", headers={"Authorization": "Bearer " + "s" * 32})
    assert "voxmon_ingest_requests_total{" not in await scrape.text()
