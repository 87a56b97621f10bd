"""The heap the daemon starts with is frozen out of the cycle collector while it serves
(docs/decisions/gc-freeze.md), and handed back when it stops."""

from __future__ import annotations

import gc
from typing import Any


async def test_objects_alive_at_start_are_frozen_while_serving_and_released_at_stop(
    start_app: Any,
) -> None:
    before = [object()]  # a tracked container alive before the app starts
    assert gc.is_tracked(before)
    assert gc.get_freeze_count() == 0
    client = await start_app()
    try:
        assert (await client.get("/healthz")).status == 200
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # modules, the app, the restored state
        assert not any(o is before for o in gc.get_objects())  # in no collected generation
        after = [object()]  # allocated while serving: collected as usual
        assert any(o is after for o in gc.get_objects())
    finally:
        await client.close()
    assert gc.get_freeze_count() == 0
    assert any(o is before for o in gc.get_objects(generation=2))
