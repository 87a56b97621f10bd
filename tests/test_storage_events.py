"""Event rows on both backends: ``insert_new`` stores a commit's events only if none of
their ids is stored yet (the writer's dedup without a lookup first), and ``insert`` skips
stored ids and says how many it stored."""

from __future__ import annotations

from pathlib import Path

from exporter.model import Event
from tests.backends import both, rows, store_for

pytestmark = both

T0 = 1_795_860_000_000  # 2026-11-28T10:00:00Z


def events(*ids: str, ts_ms: int = T0) -> list[Event]:
    return [
        Event(event_id=i, event_type="artifact_received", ts_ms=ts_ms + n, artifact_id="a")
        for n, i in enumerate(ids)
    ]


def stored(database_url: str, tmp_path: Path) -> list[tuple[str, int, int]]:
    found = rows(database_url, tmp_path, "SELECT event_id, ts_ms, received_ms FROM events")
    return sorted((r["event_id"], r["ts_ms"], r["received_ms"]) for r in found)


def test_insert_new_stores_all_when_no_id_is_stored(database_url: str, tmp_path: Path) -> None:
    store = store_for(database_url, tmp_path)
    try:
        assert store.write(lambda s: s.events.insert_new(events("x", "y"), 7)) is True
        assert store.horizons.load().history_start_ms == T0 - T0 % 3_600_000
    finally:
        store.close()
    assert stored(database_url, tmp_path) == [("x", T0, 7), ("y", T0 + 1, 7)]


def test_insert_new_stores_nothing_when_one_id_is_stored(database_url: str, tmp_path: Path) -> None:
    store = store_for(database_url, tmp_path)
    try:
        store.write(lambda s: s.events.insert(events("b", ts_ms=T0 + 5_000), 1))
        before = store.horizons.load()
        later = events("a", "b", "c", ts_ms=T0 - 7_200_000)
        assert store.write(lambda s: s.events.insert_new(later, 2)) is False
        assert store.horizons.load() == before  # the history start did not move either
        assert store.write(lambda s: s.events.insert_new(events("d"), 3)) is True
        assert store.events.existing_ids(["a", "b", "c", "d"]) == {"b", "d"}
    finally:
        store.close()
    assert stored(database_url, tmp_path) == [("b", T0 + 5_000, 1), ("d", T0, 3)]


def test_insert_skips_stored_ids_and_counts_what_it_stored(
    database_url: str, tmp_path: Path
) -> None:
    store = store_for(database_url, tmp_path)
    try:
        assert store.write(lambda s: s.events.insert(events("p"), 1)) == 1
        assert store.write(lambda s: s.events.insert(events("p", "q"), 2)) == 1
    finally:
        store.close()
    assert stored(database_url, tmp_path) == [("p", T0, 1), ("q", T0 + 1, 2)]
