"""The ingest and realtime API over loopback on a real SQLite file."""

from __future__ import annotations

import gzip
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.backends import both, rows
from tests.conftest import T, make_event
from tests.scrape import domain_samples, samples, scrape
from tests.tools import FakeClock, post, stored_durations

pytestmark = both


def stored_ids(tmp_path: Path, database_url: str) -> list[str]:
    found = rows(database_url, tmp_path, "SELECT event_id FROM events ORDER BY event_id")
    return [row["event_id"] for row in found]


def ten_with_three_bad() -> list[dict[str, Any]]:
    batch = [make_event(event_id=f"b-{i}", artifact_id=f"art-{i}") for i in range(10)]
    batch[2]["metadata"] = {"confidence": 1.5}
    batch[5]["color"] = "red"
    batch[8]["event_type"] = "transcription_exploded"
    return batch


async def test_ingest_batch_with_bad_items_stores_the_rest(
    start_app: Any, tmp_path: Path, database_url: str
) -> None:
    client = await start_app()
    status, body = await post(client, ten_with_three_bad())
    assert status == 200
    assert body["accepted"] == 7
    assert body["duplicates"] == 0
    assert [(r["index"], r["event_id"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        (2, "b-2", "metadata.confidence"),
        (5, "b-5", "color"),
        (8, "b-8", "event_type"),
    ]
    assert stored_ids(tmp_path, database_url) == [f"b-{i}" for i in (0, 1, 3, 4, 6, 7, 9)]


async def test_ingest_all_invalid_is_400_with_the_same_shape(start_app: Any) -> None:
    client = await start_app()
    status, body = await post(client, [{"event_id": "x"}])
    assert status == 400
    assert body["accepted"] == 0
    assert body["rejected"][0]["errors"][0]["field"] == "event_type"


async def test_ingest_same_batch_twice_is_all_duplicates(start_app: Any) -> None:
    client = await start_app()
    batch = [make_event(event_id=f"d-{i}", metadata={"ai_cost_usd": 0.25}) for i in range(10)]
    assert (await post(client, batch))[1]["accepted"] == 10
    before = domain_samples(await scrape(client))
    status, body = await post(client, batch)
    assert (status, body["accepted"], body["duplicates"]) == (200, 0, 10)
    assert domain_samples(await scrape(client)) == before
    assert before[("voice_pipeline_events_total", (("event_type", "artifact_received"),))] == 10


async def test_ingest_duplicate_within_one_batch_counts_once(start_app: Any) -> None:
    client = await start_app()
    event = make_event(event_id="twice")
    status, body = await post(client, [event, event])
    assert (status, body["accepted"], body["duplicates"]) == (200, 1, 1)


async def realtime(client: Any, **params: str) -> dict[str, Any]:
    response = await client.get("/v1/metrics/realtime", params=params)
    assert response.status == 200
    result: dict[str, Any] = await response.json()
    return result


async def test_realtime_org_event_moves_platform_and_org(start_app: Any) -> None:
    client = await start_app()
    await post(client, [make_event(org_id="org-a"), make_event(org_id=None)])
    assert (await realtime(client))["artifacts_received_1h"] == 2
    assert (await realtime(client, org_id="org-a"))["artifacts_received_1h"] == 1
    assert (await realtime(client, org_id="org-b"))["artifacts_received_1h"] == 0


async def test_realtime_reports_every_counter_and_failure_rate(start_app: Any) -> None:
    client = await start_app()
    events = [
        make_event(event_type="artifact_completed", metadata={"ai_cost_usd": 0.5}),
        make_event(event_type="artifact_failed"),
        make_event(event_type="artifact_failed"),
        make_event(event_type="artifact_completed"),
        make_event(event_type="transcription_failed"),
        make_event(event_type="entity_needs_disambiguation"),
        make_event(event_type="claims_extracted", metadata={"ai_cost_usd": 0.25}),
    ]
    await post(client, events)
    body = await realtime(client, org_id="org-a")
    assert body == {
        "scope": "org",
        "org_id": "org-a",
        "window_start": "2026-11-28T09:01:00.000Z",
        "window_end": "2026-11-28T10:01:00.000Z",
        "artifacts_received_1h": 0,
        "artifacts_completed_1h": 2,
        "artifacts_failed_1h": 2,
        "transcriptions_completed_1h": 0,
        "claims_extracted_1h": 1,
        "entity_resolutions_completed_1h": 1,
        "drafts_generated_1h": 0,
        "stage_failures_1h": 1,
        "ai_cost_usd_1h": 0.75,
        "failure_rate_1h": 0.5,
        "stage_latency_1h": None,  # latency windows are the platform's only
        "end_to_end_latency_1h": None,
    }


async def test_realtime_window_slides_minute_by_minute(start_app: Any, clock: FakeClock) -> None:
    client = await start_app()
    old = clock.now() - timedelta(minutes=61)
    await post(
        client,
        [
            make_event(timestamp=old.isoformat()),
            make_event(timestamp="2026-11-28T09:02:30Z"),  # 57.5 minutes old
            make_event(timestamp="2026-11-28T09:59:59Z"),
        ],
    )
    assert (await realtime(client))["artifacts_received_1h"] == 2
    # window at 10:00 is [09:01, 10:01); the 09:02 event leaves at 10:02, 09:59 at 10:59
    expected = {1: 2, 2: 1, 3: 1, 58: 1, 59: 0}
    minute = 0
    for target, count in expected.items():
        clock.advance(timedelta(minutes=target - minute))
        minute = target
        assert (await realtime(client))["artifacts_received_1h"] == count, target


async def test_realtime_rejects_unknown_parameter(start_app: Any) -> None:
    client = await start_app()
    response = await client.get("/v1/metrics/realtime", params={"org": "x"})
    assert response.status == 400
    body = await response.json()
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["message"] == "org: unknown parameter; allowed: org_id"


async def test_restart_keeps_realtime_and_metrics(start_app: Any, clock: FakeClock) -> None:
    client = await start_app()
    events = [
        make_event(event_type="transcription_started", artifact_id="a1", timestamp=T(9, 30)),
        make_event(event_type="transcription_completed", artifact_id="a1", timestamp=T(9, 31)),
        make_event(event_type="artifact_completed", duration_ms=4200, org_id="org-b"),
        make_event(event_type="circuit_breaker_opened", artifact_id=None, org_id=None),
        make_event(event_type="claims_extracted", metadata={"ai_cost_usd": 0.1}),
    ]
    await post(client, events)
    realtime_before = await realtime(client)
    metrics_before = domain_samples(await scrape(client))
    await client.close()
    restarted = await start_app()
    assert await realtime(restarted) == realtime_before
    assert domain_samples(await scrape(restarted)) == metrics_before
    assert metrics_before[("voice_pipeline_circuit_breaker_open", ())] == 1.0


async def test_ingest_ndjson_and_gzip(start_app: Any) -> None:
    client = await start_app()
    lines = b"\n".join(msgspec.json.encode(make_event()) for _ in range(3)) + b"\n\n{oops\n"
    response = await client.post(
        "/v1/events",
        data=gzip.compress(lines),
        headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
    )
    body = await response.json()
    assert response.status == 200
    assert body["accepted"] == 3
    assert [r["index"] for r in body["rejected"]] == [3]


@pytest.mark.parametrize(
    ("headers", "data", "status", "code"),
    [
        ({"Content-Type": "text/plain"}, b"{}", 415, "unsupported_media_type"),
        ({"Content-Type": "application/json"}, b"[{", 400, "bad_request"),
        ({"Content-Type": "application/json"}, b"x" * 2048, 413, "payload_too_large"),
        (
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            gzip.compress(b" " * 100_000),
            413,
            "payload_too_large",
        ),
    ],
)
async def test_ingest_refuses_bad_bodies(
    start_app: Any, headers: dict[str, str], data: bytes, status: int, code: str
) -> None:
    client = await start_app(max_body_bytes=1024)
    response = await client.post("/v1/events", data=data, headers=headers)
    assert response.status == status
    assert (await response.json())["error"]["code"] == code


@pytest.mark.parametrize("marker", [None, {"_never": 1}], ids=["events", "marker item"])
async def test_ingest_refuses_batch_over_max_batch(start_app: Any, marker: Any) -> None:
    """Six items to a daemon that takes five: 413 and nothing stored, whatever the sixth
    item holds (one shaped like the count's old marker once let the whole body through)."""
    client = await start_app(max_batch=5)
    items = [make_event() for _ in range(5)] + [marker or make_event(), make_event()]
    response = await client.post("/v1/events", json=items)
    assert response.status == 413
    assert "at most 5" in (await response.json())["error"]["message"]
    feed = await client.get("/v1/events")
    assert (feed.status, (await feed.json())["events"]) == (200, [])


@pytest.mark.parametrize(
    ("token", "path", "status"),
    [
        (None, "/v1/events", 401),
        ("wrong-token-0000000000", "/v1/events", 401),
        ("reader-token-0000000000", "/v1/events", 403),
        ("ingest-token-0000000000", "/v1/events", 200),
        ("ingest-token-0000000000", "/metrics", 403),
        ("reader-token-0000000000", "/v1/metrics/realtime", 200),
        ("scraper-token-000000000", "/metrics", 200),
        ("admin-token-00000000000", "/v1/rollups", 200),  # admin includes read
        ("admin-token-00000000000", "/v1/events", 403),
        ("admin-token-00000000000", "/metrics", 403),
        (None, "/healthz", 200),
    ],
)
async def test_auth_scopes(start_app: Any, token: str | None, path: str, status: int) -> None:
    from exporter.tokens import Token

    tokens = (
        Token("ingest", "ingest-token-0000000000", frozenset({"ingest"})),
        Token("reader", "reader-token-0000000000", frozenset({"read"})),
        Token("scraper", "scraper-token-000000000", frozenset({"metrics"})),
        Token("admin", "admin-token-00000000000", frozenset({"admin"})),
    )
    client = await start_app(tokens=tokens)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if path == "/v1/events":
        response = await client.post(path, json=[make_event()], headers=headers)
    else:
        response = await client.get(path, headers=headers)
    assert response.status == status


DAY_MS = 86_400_000


async def test_ingest_duration_over_max_is_stored_without_it_and_warned(
    start_app: Any, tmp_path: Path, database_url: str
) -> None:
    client = await start_app()
    event = make_event(event_id="long", event_type="artifact_completed", duration_ms=31 * DAY_MS)
    status, body = await post(client, [event])
    assert (status, body["accepted"], body["duplicates"], body["rejected"]) == (200, 1, 0, [])
    message = (
        "duration from duration_ms is 2678400000 ms, over max_duration_days (30 days,"
        " 2592000000 ms); the event is stored without a duration"
    )
    assert body["warnings"] == [
        {"index": 0, "event_id": "long", "errors": [{"field": "duration_ms", "message": message}]}
    ]
    assert stored_durations(tmp_path, database_url) == {"long": (None, "over_max")}
    text = await scrape(client)
    assert samples(text, "voxmon_ingest_warnings_total") == {
        ("voxmon_ingest_warnings_total", (("reason", "duration_over_max"),)): 1.0
    }
    found = domain_samples(text)
    completed = (("org_id", "org-a"), ("outcome", "completed"))
    assert found[("voice_pipeline_artifacts_total", completed)] == 1.0
    assert ("voice_pipeline_end_to_end_duration_seconds_count", ()) not in found  # never observed
    assert (await realtime(client))["artifacts_completed_1h"] == 1


async def test_ingest_warnings_empty_when_durations_fit(start_app: Any) -> None:
    client = await start_app(max_duration_days=2)
    event = make_event(event_type="artifact_completed", duration_ms=2 * DAY_MS)
    status, body = await post(client, [event])
    assert (status, body["accepted"], body["warnings"]) == (200, 1, [])


async def test_ingest_unknown_metadata_keys_are_stored_and_shown_in_the_timeline(
    start_app: Any,
) -> None:
    client = await start_app()
    metadata = {
        "confidence": 0.91,
        "avgConfidence": 0.87,
        "pipeline": {"version": "2.3", "models": ["asr-2", "llm-4"], "retries": {"asr": 1}},
    }
    status, body = await post(client, [
        make_event(event_id="m-1", event_type="transcription_completed", metadata=metadata),
        make_event(event_id="m-2", event_type="claims_extracted",
                   metadata={"confidence": 2, "avgConfidence": 0.5}),
        make_event(event_id="m-3", event_type="claims_extracted", metadata={"avgConfidence": 0.5},
                   pipelineVersion="2.3"),
    ])  # fmt: skip
    assert (status, body["accepted"]) == (200, 1)
    assert [(r["index"], r["event_id"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        (1, "m-2", "metadata.confidence"),
        (2, "m-3", "pipelineVersion"),
    ]
    response = await client.get("/v1/artifacts/art-1/events")
    assert response.status == 200
    events = (await response.json())["events"]
    assert [(e["event_id"], e["metadata"]) for e in events] == [("m-1", metadata)]


async def test_ingest_count_too_large_for_storage_is_a_rejection_not_a_failed_commit(
    start_app: Any, tmp_path: Path, database_url: str
) -> None:
    client = await start_app()
    status, body = await post(client, [
        make_event(event_id="ok", event_type="claims_extracted", metadata={"claim_count": 3}),
        make_event(event_id="huge", event_type="claims_extracted",
                   metadata={"claim_count": 2**63}),
    ])  # fmt: skip
    assert (status, body["accepted"]) == (200, 1)
    assert [(r["event_id"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        ("huge", "metadata.claim_count")
    ]
    assert stored_ids(tmp_path, database_url) == ["ok"]


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({f"k{i}": i for i in range(65)}, "metadata has 65 keys; at most 64"),
        ({"k" * 129: 1}, "has 129 characters; at most 128"),
        ({"blob": "x" * 16_384}, "metadata is 16396 bytes; at most 16384"),
        ({"avgConfidence": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[0]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
         "metadata nested more than 32 levels"),
    ],
)  # fmt: skip
async def test_ingest_metadata_bounds_are_a_400_naming_metadata(
    start_app: Any, metadata: dict[str, Any], message: str
) -> None:
    client = await start_app()
    status, body = await post(client, [make_event(event_id="big", metadata=metadata)])
    assert (status, body["accepted"]) == (400, 0)
    assert [(r["event_id"], r["errors"][0]["field"]) for r in body["rejected"]] == [
        ("big", "metadata")
    ]
    assert message in body["rejected"][0]["errors"][0]["message"]
    assert samples(await scrape(client), "voxmon_ingest_rejected_total") == {
        ("voxmon_ingest_rejected_total", (("reason", "metadata_too_large"),)): 1.0
    }


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
async def test_ingest_body_nested_past_the_decoder_limit_is_a_400(
    start_app: Any, content_type: str
) -> None:
    client = await start_app()
    deep = b"[" * 100_000 + b"]" * 100_000
    item = msgspec.json.encode(make_event(event_id="deep"))[:-1] + b',"metadata":{"x":' + deep
    response = await client.post(
        "/v1/events", data=item + b"}}", headers={"Content-Type": content_type}
    )
    assert response.status == 400
    body = await response.json()
    if content_type == "application/json":
        assert body["error"]["message"] == "body is nested too deeply to be events"
    else:  # one item per line: the item is rejected on its own
        assert body["rejected"][0]["errors"][0]["field"] == "metadata"
