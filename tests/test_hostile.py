"""Hostile and broken input over real HTTP: every item of the corpus is a 4xx with the JSON
error body, counted, and nothing reaches the catch-all 500."""

from __future__ import annotations

import asyncio
import gzip
import io
from typing import Any

import msgspec
import pytest

from exporter.live.windows import MinuteWindows
from exporter.tokens import Token
from tests.backends import both, sqlite_only
from tests.conftest import make_event
from tests.scrape import samples

pytestmark = both

DEEP = b"[" * 50_000 + b"]" * 50_000
DEEP_METADATA = msgspec.json.encode(make_event()).replace(
    b"}", b', "metadata": {"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}", 1
)


def error_of(body: dict[str, Any]) -> dict[str, Any]:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    error: dict[str, Any] = body["error"]
    return error


async def internal_errors(client: Any) -> float:
    found = samples(await (await client.get("/metrics")).text(), "voxmon_http_internal")
    return found[("voxmon_http_internal_errors_total", ())]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (DEEP, {}, 400, "bad_request"),
        (DEEP_METADATA, {}, 400, "bad_request"),
        (gzip.compress(b"[" + b",".join([b"{}"] * 2_600_000) + b"]"), {"Content-Encoding": "gzip"},
         413, "payload_too_large"),
        (b"{}", {"Content-Type": "application/json; charset=utf-16"}, 415,
         "unsupported_media_type"),
    ],
)  # fmt: skip
async def test_hostile_bodies_are_json_4xx(
    start_app: Any, body: bytes, headers: dict[str, str], status: int, code: str
) -> None:
    client = await start_app()
    sent = {"Content-Type": "application/json", **headers}
    response = await client.post("/v1/events", data=body, headers=sent)
    assert response.status == status
    assert error_of(await response.json())["code"] == code
    metrics = await (await client.get("/metrics")).text()
    assert f'voxmon_ingest_requests_total{{code="{status}"}} 1.0' in metrics
    assert await internal_errors(client) == 0.0


@pytest.mark.parametrize(
    "timestamp",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        -(2**63),
        2**63,
        10**20,
    ],
)
@pytest.mark.parametrize("field", ["timestamp", "stage_started_at", "stage_completed_at"])
async def test_extreme_times_are_per_item_rejections(
    start_app: Any, field: str, timestamp: object
) -> None:
    client = await start_app()
    event = make_event(event_type="transcription_completed", **{field: timestamp})
    response = await client.post("/v1/events", json=[event, make_event()])
    body = await response.json()
    assert response.status == 200
    assert body["accepted"] == 1
    assert [r["index"] for r in body["rejected"]] == [0]
    assert body["rejected"][0]["errors"][0]["field"] in (field, "stage_started_at")
    assert await internal_errors(client) == 0.0


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/metrics/history", {"period": "hourly", "start": "1e20", "end": "2"}),
        ("/v1/metrics/history", {"period": "hourly", "start": str(2**63), "end": str(2**64)}),
        ("/v1/metrics/stages", {"period": "daily", "start": str(-(2**63)), "end": "0"}),
        ("/v1/metrics/orgs", {"period": "daily", "start": "0000-12-31T00:00:00Z", "end": "1"}),
        ("/v1/metrics/history", {"period": "hourly", "start": "-62135596800001", "end": "0"}),
        ("/v1/metrics/stages", {"period": "daily", "start": "0", "end": "253402300800000"}),
    ],
)
async def test_extreme_query_times_are_400(
    start_app: Any, path: str, query: dict[str, str]
) -> None:
    client = await start_app()
    response = await client.get(path, params=query)
    assert response.status == 400
    assert error_of(await response.json())["details"][0]["field"] in ("start", "end")
    assert await internal_errors(client) == 0.0


async def test_rollup_run_with_extreme_window_is_400(start_app: Any) -> None:
    client = await start_app()
    for start, end in (("1e20", "1e21"), ("9999-12-31T00:00:00Z", "9999-12-31T23:00:00Z")):
        response = await client.post(
            "/v1/rollups/rollup-hourly/run", params={"start": start, "end": end}
        )
        assert response.status == 400
    status = await (await client.get("/v1/rollups")).json()
    assert status["jobs"][0]["last_run"] is None


async def raw_request(client: Any, request: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(request)
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def test_non_utf8_authorization_is_401(start_app: Any) -> None:
    client = await start_app(tokens=(Token("t", "reader-token-0000000000", frozenset({"read"})),))
    status, body = await raw_request(
        client,
        b"GET /v1/metrics/realtime HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer \xff\xfe\x80token\r\nConnection: close\r\n\r\n",
    )
    assert status == 401
    assert error_of(msgspec.json.decode(body))["code"] == "unauthorized"


async def test_unhandled_error_is_a_counted_json_500(
    start_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catch-all exists for voxmon's own bugs (an injected fault here): it still
    answers the JSON error body and counts it."""
    client = await start_app()

    def broken(*args: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(MinuteWindows, "totals", broken)
    response = await client.get("/v1/metrics/realtime")
    assert response.status == 500
    assert error_of(await response.json())["code"] == "internal"
    monkeypatch.undo()
    assert await internal_errors(client) == 1.0


async def test_aiohttp_own_413_uses_voxmon_code(start_app: Any) -> None:
    client = await start_app(max_body_bytes=1000)
    response = await client.put("/v1/orgs/acme", data=b'{"name": "' + b"x" * 5000 + b'"}')
    assert response.status == 413
    assert error_of(await response.json())["code"] == "payload_too_large"


COUNT_FIELDS = (
    "claim_count", "entity_count", "auto_resolved_count", "disambiguation_count",
    "draft_count", "transcript_word_count", "retry_attempt",
)  # fmt: skip


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        *(({name: 2**63}, f"metadata.{name}") for name in COUNT_FIELDS),
        ({"ai_cost_usd": 1.7e308}, "metadata.ai_cost_usd"),
        ({"ai_cost_usd": 1000.01}, "metadata.ai_cost_usd"),  # over max_event_cost_usd
        ({"transcript_duration_s": 1.7e308}, "metadata.transcript_duration_s"),
        ({"confidence": 1.0000001}, "metadata.confidence"),
    ],
)
async def test_values_that_cannot_be_stored_or_summed_are_per_item_400s(
    start_app: Any, metadata: dict[str, Any], field: str
) -> None:
    """One client's huge value is its own item's rejection: the rest of its batch, and
    every other client's request, commit."""
    client = await start_app()
    poison = make_event(event_type="claims_extracted", metadata=metadata)
    good = make_event(event_type="claims_extracted", metadata={"claim_count": 3})
    body = await (await client.post("/v1/events", json=[good, poison])).json()
    assert (body["accepted"], [r["index"] for r in body["rejected"]]) == (1, [1])
    assert body["rejected"][0]["errors"][0]["field"] == field


async def test_cost_counters_stay_finite_at_the_maxima(start_app: Any) -> None:
    """The bounds make overflow impossible, not unlikely: a billion events at the largest
    accepted cost and count sum to finite numbers, and two such events through the real
    path leave every cost figure finite and exact."""
    from exporter.model import MAX_COST_USD, MAX_COUNT

    assert float(MAX_COST_USD) * 10**12 < 1.7e308  # a trillion events at the wire bound
    assert MAX_COUNT * 10**9 < 2**63  # SQLite INTEGER sums of a billion events
    client = await start_app()
    events = [
        make_event(event_type="claims_extracted", artifact_id=f"a{i}",
                   metadata={"ai_cost_usd": 1000.0, "claim_count": 10**9})
        for i in range(2)
    ]  # fmt: skip
    assert (await (await client.post("/v1/events", json=events)).json())["accepted"] == 2
    realtime = await (await client.get("/v1/metrics/realtime")).json()
    assert realtime["ai_cost_usd_1h"] == 2000.0
    found = samples(await (await client.get("/metrics")).text(), "voice_pipeline_ai_cost")
    assert found[("voice_pipeline_ai_cost_usd_total", (("org_id", "org-a"),))] == 2000.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("event_id", "   "), ("artifact_id", "\t"), ("org_id", " "), ("org_id", "__other__")],
)
async def test_blank_and_reserved_ids_are_rejected(start_app: Any, field: str, value: str) -> None:
    client = await start_app()
    body = await (await client.post("/v1/events", json=[make_event(**{field: value})])).json()
    assert body["accepted"] == 0
    assert body["rejected"][0]["errors"][0]["field"] == field


@pytest.mark.parametrize("field", ["org_id", "event_id", "error_message", "stage"])
async def test_a_nul_character_is_refused_per_item_on_every_backend(
    start_app: Any, field: str
) -> None:
    """PostgreSQL text cannot hold U+0000: refusing the item (not failing the commit) keeps
    the rest of the batch, and SQLite answers the same."""
    client = await start_app()
    bad = make_event(**{field: "a\u0000b"})
    response = await client.post("/v1/events", json=[make_event(), bad])
    assert response.status == 200
    body = await response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["index"] == 1
    assert body["rejected"][0]["errors"][0]["field"] == field
    assert "U+0000" in body["rejected"][0]["errors"][0]["message"]


@sqlite_only
async def test_a_poisoning_client_never_fails_anyone_else(
    start_app: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An item that fails the group commit for a reason validation did not foresee (an
    injected fault at the storage boundary): the writer retries the group request by
    request, so only the poisoning request fails (500, JSON) and 0 good requests do."""
    from exporter.storage.sqlite.events import SqliteEvents

    real = SqliteEvents.insert

    def insert(self: SqliteEvents, events: Any, received_ms: int) -> None:
        events = list(events)
        if any(e.event_id.startswith("poison") for e in events):
            raise ValueError("injected: cannot store this value")
        real(self, events, received_ms)

    monkeypatch.setattr(SqliteEvents, "insert", insert)
    client = await start_app()
    outcomes: dict[str, list[int]] = {"good": [], "poison": []}

    async def sender(kind: str, number: int) -> None:
        for i in range(60):
            event = make_event(event_id=f"{kind}-{number}-{i}", artifact_id=f"{kind}{number}")
            response = await client.post("/v1/events", json=[event, make_event()])
            outcomes[kind].append(response.status)
            if kind == "poison":
                assert (await response.json())["error"]["code"] == "commit_failed"

    await asyncio.gather(sender("good", 1), sender("good", 2), sender("poison", 1))
    assert outcomes["good"] == [200] * 120
    assert outcomes["poison"] == [500] * 60
    shared = [r for r in caplog.records if "retrying them one by one" in r.getMessage()]
    assert shared, "no group commit held the poison beside a good request"


async def test_ten_thousand_bad_items_get_a_short_answer(start_app: Any) -> None:
    client = await start_app()
    bad = [make_event(event_type="nope") for _ in range(9_999)]
    payload = io.BytesIO(msgspec.json.encode([*bad, make_event()]))
    response = await client.post(
        "/v1/events", data=payload, headers={"Content-Type": "application/json"}
    )
    body = await response.json()
    assert "error" not in body, body
    assert (body["accepted"], len(body["rejected"]), body["rejected_not_listed"]) == (
        1, 100, 9_899,
    )  # fmt: skip
    assert [r["index"] for r in body["rejected"]] == list(range(100))
    assert len(await response.read()) < 20_000
    metrics = await (await client.get("/metrics")).text()
    assert 'voxmon_ingest_rejected_total{reason="unknown_event_type"} 9999.0' in metrics
