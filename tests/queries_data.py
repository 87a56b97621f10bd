"""The read API's hand-built dataset (two orgs, no-org events, two days), loaded into a
running app and rolled up, with a GET helper."""

from __future__ import annotations

from typing import Any

from tests.conftest import make_event

DAY1, DAY2 = "2026-11-26T12", "2026-11-27T12"


RANGE = {"period": "daily", "start": "2026-11-26T00:00:00Z", "end": "2026-11-28T00:00:00Z"}


def at(hour: str, minute: int) -> str:
    return f"{hour}:{minute:02d}:00Z"


def dataset() -> list[dict[str, Any]]:
    events = []
    for i in range(10):  # org-a, day 1: ten 100 ms transcriptions
        events.append(
            make_event(
                event_type="transcription_completed",
                artifact_id=f"a{i}",
                org_id="org-a",
                timestamp=at(DAY1, i),
                duration_ms=100,
            )
        )
    for i in range(3):
        events.append(
            make_event(
                event_type="transcription_started",
                artifact_id=f"a{i}",
                org_id="org-a",
                timestamp=at(DAY1, 0),
            )
        )
    events += [
        make_event(
            event_type="artifact_received", artifact_id="a0", org_id="org-a", timestamp=at(DAY1, 0)
        ),
        make_event(
            event_type="artifact_received", artifact_id="a1", org_id="org-a", timestamp=at(DAY1, 0)
        ),
        make_event(
            event_type="artifact_received", artifact_id="b0", org_id="org-b", timestamp=at(DAY1, 0)
        ),
        make_event(
            event_type="artifact_received", artifact_id="x0", org_id=None, timestamp=at(DAY1, 0)
        ),
        make_event(
            event_type="artifact_completed",
            artifact_id="a0",
            org_id="org-a",
            timestamp=at(DAY1, 30),
            duration_ms=5000,
            metadata={"ai_cost_usd": 0.5},
        ),
        make_event(
            event_type="artifact_failed", artifact_id="b0", org_id="org-b", timestamp=at(DAY1, 30)
        ),
        make_event(
            event_type="transcription_failed",
            artifact_id="a1",
            org_id="org-a",
            timestamp=at(DAY1, 20),
        ),
    ]
    for i in range(2):  # org-b, day 2: two 2000 ms transcriptions
        events.append(
            make_event(
                event_type="transcription_completed",
                artifact_id=f"b{i + 1}",
                org_id="org-b",
                timestamp=at(DAY2, i),
                duration_ms=2000,
            )
        )
    return events


async def loaded(start_app: Any, **settings: Any) -> Any:
    client = await start_app(**settings)
    assert (await client.post("/v1/events", json=dataset())).status == 200
    for job in ("rollup-hourly", "rollup-daily"):
        response = await client.post(f"/v1/rollups/{job}/run")
        assert response.status == 200
        assert (await response.json())["result"] == "success"
    return client


async def get(client: Any, path: str, **params: Any) -> Any:
    response = await client.get(path, params=params)
    assert response.status == 200, await response.text()
    return await response.json()
