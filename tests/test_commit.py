"""The ingest commit's dedup on both backends: a group commit whose events are all new takes
the insert-only path, one that holds an id stored earlier starts over from the stored ids;
either way every request's accepted and duplicates counts, and the derived durations, are
what looking the ids up first gives."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from exporter.ingest.commit import CommitResult, Outcome, commit
from exporter.live.orgs import OrgRegistry
from exporter.model import Event
from exporter.storage.base import Store
from tests.backends import both, rows, store_for

pytestmark = both

T0 = 1_795_860_000_000  # 2026-11-28T10:00:00Z
NOW = T0 + 60_000


def event(event_id: str, event_type: str = "artifact_received", at: int = 0) -> Event:
    return Event(event_id=event_id, event_type=event_type, ts_ms=T0 + at, artifact_id="n1")


def run(store: Store, *batches: Sequence[Event]) -> Outcome:
    orgs = OrgRegistry(10, 10)
    return commit(store, list(batches), NOW, T0 - 3_600_000, orgs, None, 86_400_000, None)


def counts(outcome: Outcome) -> list[tuple[int, int]]:
    return [(r.accepted, r.duplicates) for r in outcome.results]


def test_commit_counts_duplicates_within_and_across_requests(
    database_url: str, tmp_path: Path
) -> None:
    store = store_for(database_url, tmp_path)
    try:
        first = run(store, [event("a"), event("b"), event("a")], [event("b"), event("c")])
        assert counts(first) == [(2, 1), (1, 1)]
        assert first.results[0] == CommitResult(2, 1, (), first.results[0].events_from_ms)
    finally:
        store.close()
    assert sorted(r["event_id"] for r in rows(database_url, tmp_path, "SELECT * FROM events")) == [
        "a", "b", "c",
    ]  # fmt: skip


def test_commit_with_a_stored_id_counts_it_and_stores_the_rest_once(
    database_url: str, tmp_path: Path
) -> None:
    store = store_for(database_url, tmp_path)
    try:
        run(store, [event("a")])
        completed = event("done", "artifact_completed", at=5_000)
        again = run(store, [event("x"), event("a"), completed], [event("x"), event("y")])
        assert counts(again) == [(2, 1), (1, 1)]
        assert run(store, [event("a"), event("y")]).results[0].duplicates == 2
    finally:
        store.close()
    found = rows(database_url, tmp_path, "SELECT event_id, duration_ms FROM events")
    assert sorted((r["event_id"], r["duration_ms"]) for r in found) == [
        ("a", None), ("done", 5_000.0), ("x", None), ("y", None),
    ]  # fmt: skip
