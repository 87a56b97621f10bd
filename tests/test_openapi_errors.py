"""Error answers the server sends are in the generated document: a body over
``max_body_bytes`` on ``PUT /v1/orgs/{org_id}`` is a 413 there as on ``POST /v1/events``."""

from __future__ import annotations

from typing import Any

from exporter.http.openapi import document


async def test_openapi_lists_the_413_a_too_large_org_name_body_gets(start_app: Any) -> None:
    client = await start_app(max_body_bytes=1024)
    response = await client.put("/v1/orgs/acme", json={"name": "a" * 2000})
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
    assert "413" in document()["paths"]["/v1/orgs/{org_id}"]["put"]["responses"]
