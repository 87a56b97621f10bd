"""The status page at ``/`` in a real headless Chromium (Debian's, driven by Playwright from
PyPI): its figures equal the API's, client input renders as text, a 401 brings the token
prompt, and the page is served with a Content-Security-Policy that forbids every external
source. ``STATUS_PAGE_SCREENSHOT=docs/status-page.png`` saves the README's screenshot."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from exporter.errors import ConfigError
from exporter.http.status import DASHBOARDS
from exporter.settings import Settings
from exporter.tokens import Token
from tests.conftest import T0, make_event

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # the test extra is missing: browser tests fail in CI, skip elsewhere
    async_playwright = expect = None

ADMIN = "status-admin-token-0001"
READER = "status-reader-token-001"
SCRAPER = "status-scraper-token-01"
TOKENS = (
    Token("admin", ADMIN, frozenset({"admin", "ingest", "metrics"})),
    Token("reader", READER, frozenset({"read"})),
    Token("scraper", SCRAPER, frozenset({"metrics"})),
)
AS_ADMIN = {"Authorization": f"Bearer {ADMIN}"}
REPO = Path(__file__).resolve().parent.parent
NO_VALUE = "\N{EN DASH}"  # what a card shows before its first figure
UPDATED = re.compile(r"^updated 2026-11-28 10:00 UTC")  # first refresh done, at T0


def _unavailable(what: str) -> None:
    """Fail in CI (``.ci/run`` installs chromium and the test extras), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI")
    pytest.skip(f"{what} is not installed")


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        _unavailable("chromium (Debian package)")
    return str(path)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    path = chromium_path()
    if async_playwright is None:
        _unavailable("playwright (the test extra)")
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=path, headless=True)
        yield launched
        await launched.close()


def note(artifact_id: str, org_id: str | None, start: datetime, fail: bool) -> list[dict[str, Any]]:
    """One note's events: transcription then (unless it fails there) the whole pipeline."""
    steps: list[tuple[str, dict[str, Any]]] = [("artifact_received", {})]
    steps.append(("transcription_started", {}))
    if fail:
        steps += [("transcription_failed", {}), ("artifact_failed", {})]
    else:
        steps += [
            ("transcription_completed", {"confidence": 0.9, "ai_cost_usd": 0.01}),
            ("claims_extraction_started", {}),
            ("claims_extracted", {"confidence": 0.8, "claim_count": 3}),
            ("entity_resolution_started", {}),
            ("entity_resolution_completed", {"entity_count": 4, "auto_resolved_count": 3,
                                             "disambiguation_count": 1}),
            ("draft_generation_started", {}),
            ("drafts_generated", {"draft_count": 1, "ai_cost_usd": 0.02}),
            ("artifact_completed", {}),
        ]  # fmt: skip
    return [
        make_event(
            event_type=event_type,
            artifact_id=artifact_id,
            org_id=org_id,
            timestamp=(start + timedelta(seconds=7 * index)).isoformat(),
            metadata=metadata or None,
        )
        for index, (event_type, metadata) in enumerate(steps)
    ]


def traffic() -> list[dict[str, Any]]:
    """Rolled-up hours (yesterday and this morning; busier org-a, an unnamed org-b, notes
    without an organisation) and, in the live hour, 4 notes of which 1 failed."""
    events: list[dict[str, Any]] = []
    for hours_ago in range(2, 30):  # the live window is 09:01-10:01
        hour = T0 - timedelta(hours=hours_ago)
        for index in range(2 + hours_ago % 5):
            org = ("org-a", "org-a", "org-b", None)[index % 4]
            failed = index % 3 == 1  # every third note fails in transcription
            events += note(f"h{hours_ago}-{index}", org, hour + timedelta(minutes=index), failed)
    for index in range(4):
        events += note(f"live-{index}", "org-a", T0 - timedelta(minutes=10 - index), index == 3)
    return events


async def seeded(start_app: Any, org_name: str) -> TestClient[Any, Any]:
    """A daemon with tokens, the traffic above, org-a named, and both rollups run."""
    client: TestClient[Any, Any] = await start_app(tokens=TOKENS)
    events = traffic()
    for offset in range(0, len(events), 1000):
        response = await client.post("/v1/events", json=events[offset : offset + 1000],
                                     headers=AS_ADMIN)  # fmt: skip
        assert (await response.json())["rejected"] == []
    bad = [make_event(event_type="no_such_type"), make_event(timestamp="2026-11-29T10:00:00Z"),
           make_event(timestamp="2026-11-29T11:00:00Z")]  # fmt: skip
    response = await client.post("/v1/events", json=bad, headers=AS_ADMIN)
    assert len((await response.json())["rejected"]) == 3
    response = await client.put("/v1/orgs/org-a", json={"name": org_name}, headers=AS_ADMIN)
    assert response.status == 200
    for job in ("rollup-hourly", "rollup-daily"):
        response = await client.post(f"/v1/rollups/{job}/run", headers=AS_ADMIN)
        assert (await response.json())["result"] == "success", job
    return client


async def api(client: TestClient[Any, Any], path: str) -> Any:
    response = await client.get(path, headers=AS_ADMIN)
    assert response.status == 200, await response.text()
    return await response.json()


async def open_page(browser: Any, client: TestClient[Any, Any], token: str | None) -> Any:
    """The page, loaded and (given a token) past the prompt with its first refresh done;
    console errors (a CSP violation among them) are collected in ``page.voxmon_errors``."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if _is_error(m) else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.voxmon_errors = errors
    await page.goto(str(client.make_url("/")))
    if token is not None:
        await page.locator("#token-form").wait_for(state="visible")
        await page.fill("#token-input", token)
        await page.click("#token-form button[type=submit]")
        await expect(page.locator("#updated")).to_have_text(UPDATED)
    return page


def _is_error(message: Any) -> bool:
    """A console error, other than the browser's note of a refused request (the page
    handles 401 and 403 itself)."""
    refused = re.match(r"Failed to load resource: .* status of 40[13] ", message.text)
    return bool(message.type == "error" and not refused)


def percent(rate: float) -> str:
    """The page's rate format (``(r * 100).toFixed(1) + " %"``)."""
    return f"{rate * 100:.1f} %"


async def test_status_page_figures_equal_the_api(start_app: Any, browser: Any) -> None:
    client = await seeded(start_app, "Acme Clinic")
    page = await open_page(browser, client, ADMIN)

    realtime = await api(client, "/v1/metrics/realtime")
    assert realtime["artifacts_received_1h"] == 4
    assert await page.text_content("#live-received") == f"{realtime['artifacts_received_1h']:,}"
    assert await page.text_content("#live-failure-rate") == percent(0.25)

    stages_range = (
        await page.get_attribute("#stages", "data-start"),
        await page.get_attribute("#stages", "data-end"),
    )
    stages = await api(client, "/v1/metrics/stages?period=hourly&start={}&end={}".format(
        *stages_range))  # fmt: skip
    transcription = next(s for s in stages["stages"] if s["stage"] == "transcription")
    assert 0.2 < transcription["failure_rate"] < 0.4
    cell = "#stages tr[data-stage=transcription] td.failure-rate"
    assert await page.text_content(cell) == percent(transcription["failure_rate"])

    orgs = await api(client, f"/v1/metrics/orgs?period=hourly&start={stages_range[0]}"
                     f"&end={stages_range[1]}&limit=10")  # fmt: skip
    assert [(o["org_id"], o["name"]) for o in orgs["orgs"][:2]] == [
        ("org-a", "Acme Clinic"), ("org-b", None)]  # fmt: skip
    assert await page.text_content("#orgs tr[data-org-id=org-a] td.org-name") == "Acme Clinic"
    assert await page.text_content("#orgs tr[data-org-id=org-b] td.org-name") == "Unknown"
    assert await page.text_content("#now-inflight") == "0"
    exposition = await (await client.get("/metrics", headers=AS_ADMIN)).text()
    rejected = sorted(
        (sample.labels["reason"], f"{sample.value:,.0f}")
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "voxmon_ingest_rejected_total"
    )
    assert sum(int(n) for _, n in rejected) == 3
    shown = await page.locator("#rejections tbody tr").evaluate_all(
        "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])"
    )
    assert sorted(tuple(row) for row in shown) == rejected
    assert page.voxmon_errors == []
    if target := os.environ.get("STATUS_PAGE_SCREENSHOT"):
        await page.screenshot(path=target, full_page=True)


async def test_status_page_renders_an_org_name_as_text(start_app: Any, browser: Any) -> None:
    hostile = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    client = await seeded(start_app, hostile)
    page = await open_page(browser, client, READER)
    cell = page.locator("#orgs tr[data-org-id=org-a] td.org-name")
    assert await cell.text_content() == hostile
    assert await cell.evaluate("node => node.children.length") == 0
    assert await page.evaluate("typeof window.pwned") == "undefined"
    # the reader token lacks the metrics scope: the page says so instead of failing
    assert "lacks the metrics scope" in (await page.text_content("#now-note") or "")
    assert page.voxmon_errors == []


async def test_status_page_asks_again_for_a_refused_token(start_app: Any, browser: Any) -> None:
    client = await start_app(tokens=TOKENS)
    page = await open_page(browser, client, None)
    await page.locator("#token-form").wait_for(state="visible")
    assert await page.text_content("#live-received") == NO_VALUE
    await page.fill("#token-input", "not-a-configured-token")
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#token-reason")).to_have_text(re.compile("^The token was refused"))
    assert await page.evaluate("sessionStorage.getItem('voxmon.token')") == (
        "not-a-configured-token"
    )
    await page.fill("#token-input", SCRAPER)  # known, but without the read scope
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#token-reason")).to_have_text(
        "The token was refused (token lacks the 'read' scope). Enter a token with the read scope."
    )
    await page.fill("#token-input", READER)
    await page.click("#token-form button[type=submit]")
    await expect(page.locator("#updated")).to_have_text(UPDATED)
    assert await page.text_content("#live-received") == "0"
    assert await page.locator("#token-form").is_hidden()


async def test_status_page_is_open_and_forbids_external_sources(start_app: Any) -> None:
    client = await start_app(tokens=TOKENS)
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    policy = dict(part.strip().split(" ", 1) for part in
                  response.headers["Content-Security-Policy"].split(";"))  # fmt: skip
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert not re.search(r"https?:|\*", response.headers["Content-Security-Policy"])
    body = await response.text()
    script = re.search(r"<script>(.*)</script>", body, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"
    assert re.findall(r'(?:src|href)="([^"]*)"', body) == [
        "data:,", "/metrics", "/openapi.json"]  # fmt: skip
    assert "innerHTML" not in body and "insertAdjacentHTML" not in body


async def test_status_page_links_the_grafana_dashboards_when_configured(start_app: Any) -> None:
    url = 'https://grafana.example.com/g/?x="><script>alert(1)</script>'
    client = await start_app(grafana_url=url)
    body = await (await client.get("/")).text()
    hrefs = re.findall(r'href="([^"]*)"', body)
    base = "https://grafana.example.com/g/?x=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert hrefs[3:] == [f"{base}/d/{uid}" for uid, _ in DASHBOARDS]
    assert "<script>alert(1)" not in body


def test_status_page_dashboards_are_the_shipped_ones() -> None:
    shipped = {
        json.loads(path.read_text())["uid"]
        for path in (REPO / "grafana" / "dashboards").glob("*.json")
    }
    assert {uid for uid, _ in DASHBOARDS} == shipped


@pytest.mark.parametrize("value", ["javascript:alert(1)", "grafana.example.com", "https://"])
def test_status_page_grafana_url_must_be_a_web_url(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.load(None, {"VOXMON_GRAFANA_URL": value})
    assert raised.value.problems == [f"grafana_url: an http:// or https:// URL, got {value!r}"]


def test_status_page_grafana_url_defaults_to_empty_and_reads_the_environment() -> None:
    assert Settings.load(None, {}).grafana_url == ""
    loaded = Settings.load(None, {"VOXMON_GRAFANA_URL": "http://127.0.0.1:3000"})
    assert loaded.grafana_url == "http://127.0.0.1:3000"
