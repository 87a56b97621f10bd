"""``POST /v1/events``: where a body is parsed. Only a few items are validated on the
event loop; a body of many tiny items goes to a worker thread like a large or gzip one."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from exporter.http import ingest
from tests.backends import both

pytestmark = both


@pytest.fixture
def parse_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Threads ``validate_items`` ran on (it still validates as before)."""
    threads: list[int] = []
    validate = ingest.validate_items

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.get_ident())
        return validate(*args, **kwargs)

    monkeypatch.setattr(ingest, "validate_items", spy)
    return threads


@pytest.mark.parametrize(
    ("body", "on_loop"),
    [
        (b'{"event_id": "e1"}', True),  # one item: cheaper than a thread hop
        (b"[" + b",".join([b"{}"] * 32) + b"]", True),
        (b"[" + b",".join([b"{}"] * 33) + b"]", False),
        (b"[" + b",".join([b"{}"] * 10_000) + b"]", False),  # 30 KB, 10,000 items
    ],
)
async def test_ingest_parses_many_tiny_items_off_the_loop(
    start_app: Any, parse_threads: list[int], body: bytes, on_loop: bool
) -> None:
    client = await start_app()
    response = await client.post(
        "/v1/events", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400  # every item lacks its required fields
    assert len(parse_threads) == 1
    assert (parse_threads[0] == threading.get_ident()) is on_loop
