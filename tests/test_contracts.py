"""The API's contracts stay put: the ``/metrics`` family set (names, types, help, label
names) and the JSON of every GET endpoint over a fixed, seeded dataset equal golden files
recorded before metric families and response bodies became declared types.

After a deliberate change, rewrite the golden files with
``VOXMON_WRITE_GOLDEN=1 python -m pytest tests/test_contracts.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
from prometheus_client.parser import text_string_to_metric_families

from exporter.http.openapi import document
from tests.conftest import make_event
from tests.scrape import scrape
from tests.tools import FakeClock

GOLDEN = Path(__file__).parent / "golden"

_HOUR = "2026-11-28T09:"


def _t(minute: int, second: int = 0) -> str:
    return f"{_HOUR}{minute:02d}:{second:02d}Z"


def _dataset() -> list[dict[str, Any]]:
    """Two organisations and one org-less note between 09:05 and 09:55, every family fed:
    stage outcomes with durations, end-to-end times, metadata, failures, system and cost."""
    e = make_event
    return [
        e(event_id="a1", artifact_id="n1", timestamp=_t(5)),
        e(event_id="a2", artifact_id="n1", event_type="transcription_started", timestamp=_t(6)),
        e(event_id="a3", artifact_id="n1", event_type="transcription_completed",
          timestamp=_t(7), duration_ms=1500, metadata={"confidence": 0.9, "ai_cost_usd": 0.25}),
        e(event_id="a4", artifact_id="n1", event_type="claims_extracted", timestamp=_t(9),
          stage_started_at=_t(8), metadata={"claim_count": 4, "confidence": 0.5}),
        e(event_id="a5", artifact_id="n1", event_type="entity_needs_disambiguation",
          timestamp=_t(10), duration_ms=700, metadata={"entity_count": 3,
          "disambiguation_count": 1, "auto_resolved_count": 2, "colour": "teal"}),
        e(event_id="a6", artifact_id="n1", event_type="drafts_generated", timestamp=_t(12),
          duration_ms=65_000, metadata={"draft_count": 2, "ai_cost_usd": 1.5}),
        e(event_id="a7", artifact_id="n1", event_type="draft_confirmed", timestamp=_t(20)),
        e(event_id="a8", artifact_id="n1", event_type="artifact_completed", timestamp=_t(21)),
        e(event_id="b1", artifact_id="n2", org_id="org-b", timestamp=_t(30)),
        e(event_id="b2", artifact_id="n2", org_id="org-b", event_type="transcription_failed",
          timestamp=_t(31), error_code="asr_timeout", error_message="timed out"),
        e(event_id="b3", artifact_id="n2", org_id="org-b", event_type="retry_initiated",
          timestamp=_t(32), stage="transcription", metadata={"retry_attempt": 1}),
        e(event_id="b4", artifact_id="n2", org_id="org-b", event_type="artifact_failed",
          timestamp=_t(33), error_code="asr_timeout"),
        e(event_id="c1", artifact_id="n3", org_id=None, timestamp=_t(40)),
        e(event_id="c2", artifact_id="n3", org_id=None, event_type="transcription_started",
          timestamp=_t(41)),
        e(event_id="s1", artifact_id=None, org_id=None, event_type="circuit_breaker_opened",
          timestamp=_t(50)),
        e(event_id="s2", artifact_id=None, event_type="budget_exceeded", timestamp=_t(55),
          metadata={"ai_cost_usd": 3.0}),
    ]  # fmt: skip


_HOURLY = {"period": "hourly", "start": "2026-11-28T09:00:00Z", "end": "2026-11-28T10:00:00Z"}
GETS: tuple[tuple[str, dict[str, str]], ...] = (
    ("/v1/metrics/realtime", {}),
    ("/v1/metrics/realtime", {"org_id": "org-a"}),
    ("/v1/metrics/history", _HOURLY),
    ("/v1/metrics/history", {**_HOURLY, "org_id": "org-b"}),
    ("/v1/metrics/stages", _HOURLY),
    ("/v1/metrics/stages", {**_HOURLY, "org_id": "org-a"}),
    ("/v1/metrics/orgs", _HOURLY),
    ("/v1/orgs", {}),
    ("/v1/orgs/org-a", {}),
    ("/v1/artifacts", {"state": "in_flight"}),
    ("/v1/artifacts", {"state": "failed"}),
    ("/v1/artifacts", {"state": "stuck", "limit": "1"}),
    ("/v1/artifacts/n1/events", {}),
    ("/v1/rollups", {}),
    ("/healthz", {}),
    ("/readyz", {}),
)
"""Every GET endpoint answering JSON (``/openapi.json`` is generated and checked by
``test_openapi.py``)."""


async def _seed(client: Any) -> dict[str, Any]:
    """The dataset posted at 10:00 (FakeClock), org-a named, hour 09:00 rolled up."""
    posted = await client.post("/v1/events", json=_dataset())
    assert posted.status == 200
    named = await client.put("/v1/orgs/org-a", json={"name": "Acme Coaching"})
    assert named.status == 200
    run = await client.post("/v1/rollups/rollup-hourly/run")
    assert run.status == 200
    return {
        "POST /v1/events": await posted.json(),
        "PUT /v1/orgs/org-a": await named.json(),
        "POST /v1/rollups/rollup-hourly/run": _steady(await run.json()),
    }


def _steady(body: Any) -> Any:
    """The body with run durations (measured, so never the same twice) replaced by 0."""
    if isinstance(body, dict):
        return {k: 0.0 if k == "duration_s" else _steady(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_steady(v) for v in body]
    return body


def family_lines(text: str) -> list[str]:
    """``# HELP``/``# TYPE`` lines and one ``name{label,...}`` line per sample name and label
    set (values and label values left out), sorted."""
    lines = {line for line in text.splitlines() if line.startswith(("# HELP", "# TYPE"))}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            lines.add(f"{sample.name}{{{','.join(sorted(sample.labels))}}}")
    return sorted(lines)


def _golden(name: str, actual: str) -> str:
    """The golden file's text (first written from ``actual`` under VOXMON_WRITE_GOLDEN)."""
    path = GOLDEN / name
    if os.environ.get("VOXMON_WRITE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(actual)
    return path.read_text()


async def test_get_endpoints_answer_the_golden_json(start_app: Any, clock: FakeClock) -> None:
    client = await start_app()
    answers = await _seed(client)
    for path, params in GETS:
        response = await client.get(path, params=params)
        assert response.status == 200, (path, await response.text())
        query = "&".join(f"{k}={v}" for k, v in params.items())
        answers[f"GET {path}?{query}" if query else f"GET {path}"] = _steady(await response.json())
    text = json.dumps(answers, indent=1, sort_keys=True) + "\n"
    assert answers == json.loads(_golden("api.json", text))  # equal values: 1 == 1.0


def _response_schema(key: str, status: str = "200") -> dict[str, Any]:
    """The documented schema of the answer recorded under ``key`` ("METHOD /path?query"),
    with the document's components so its references resolve."""
    spec = document()
    method, target = key.split(" ")
    path = target.split("?")[0]
    for template, operations in spec["paths"].items():
        if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path):
            schema = operations[method.lower()]["responses"][status]["content"]
            return {**schema["application/json"]["schema"], "components": spec["components"]}
    raise AssertionError(f"{path} is not documented")


def test_every_recorded_answer_validates_against_the_generated_document() -> None:
    answers = json.loads((GOLDEN / "api.json").read_text())
    assert len(answers) == 19
    invalid = {
        key: list(jsonschema_rs.validator_for(_response_schema(key)).iter_errors(body))
        for key, body in answers.items()
    }
    assert {key: [str(e) for e in errors] for key, errors in invalid.items() if errors} == {}


def test_the_document_refuses_a_body_the_handlers_never_send() -> None:
    """The validation above can fail: a realtime body missing a counter does not pass."""
    answers = json.loads((GOLDEN / "api.json").read_text())
    body = answers["GET /v1/metrics/realtime"]
    del body["drafts_generated_1h"]
    validator = jsonschema_rs.validator_for(_response_schema("GET /v1/metrics/realtime"))
    assert [e.message for e in validator.iter_errors(body)] == [
        '"drafts_generated_1h" is a required property'
    ]


async def test_metrics_family_set_is_the_golden_one(start_app: Any, clock: FakeClock) -> None:
    client = await start_app()
    await _seed(client)
    text = "\n".join(family_lines(await scrape(client))) + "\n"
    assert text == _golden("metrics_families.txt", text)
