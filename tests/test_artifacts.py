"""The artifact state fold (pure) and its retention."""

from __future__ import annotations

import gc
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from exporter.artifacts import (
    COMPLETED,
    FAILED,
    IN_FLIGHT,
    ArtifactState,
    InflightKey,
    fold,
    inflight_delta,
)
from exporter.model import Event
from exporter.storage.postgres import schema as postgres_schema
from exporter.storage.sqlite import schema as sqlite_schema
from exporter.timestamps import datetime_to_ms
from rollup import cleanup, jobs
from rollup.windows import Retention
from tests.backends import both, rows, script, store_for
from tests.conftest import T0, make_event
from tests.scrape import domain_samples, scrape
from tests.tools import FakeClock, open_store

T = datetime_to_ms(datetime(2026, 11, 28, 10, tzinfo=UTC))


def ev(event_type: str, minute: int, stage: str | None = None, **kw: object) -> Event:
    from exporter.catalog import EVENT_TYPES

    return Event(
        f"{event_type}-{minute}", event_type, T + minute * 60_000, artifact_id="n1",
        stage=stage or EVENT_TYPES[event_type].stage, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def final(*events: Event) -> ArtifactState:
    return fold({}, events)["n1"]


@pytest.mark.parametrize(
    ("events", "status", "stage", "failed_stage", "error", "awaiting"),
    [
        ([ev("artifact_received", 0)], IN_FLIGHT, "ingestion", None, None, False),
        (
            [ev("artifact_received", 0), ev("claims_extraction_failed", 3, error_code="E_LLM")],
            FAILED, "claims_extraction", "claims_extraction", "E_LLM", False,
        ),
        (
            [ev("claims_extraction_failed", 3, error_code="E"), ev("retry_initiated", 4),
             ev("claims_extraction_started", 5)],
            IN_FLIGHT, "claims_extraction", "claims_extraction", "E", False,
        ),
        (
            [ev("transcription_started", 1), ev("artifact_failed", 2, error_code="E_X")],
            FAILED, "transcription", "transcription", "E_X", False,
        ),
        (
            [ev("entity_needs_disambiguation", 4)],
            IN_FLIGHT, "entity_resolution", None, None, True,
        ),
        (
            [ev("entity_needs_disambiguation", 4), ev("draft_generation_started", 6)],
            IN_FLIGHT, "draft_generation", None, None, False,
        ),
        (
            [ev("artifact_received", 0), ev("artifact_completed", 9), ev("draft_confirmed", 8)],
            COMPLETED, "confirmation", None, None, False,
        ),
        (  # a late artifact_completed still closes the note
            [ev("transcription_started", 5), ev("artifact_completed", 4)],
            COMPLETED, "transcription", None, None, False,
        ),
    ],
)  # fmt: skip
def test_artifacts_fold(
    events: list[Event],
    status: str,
    stage: str | None,
    failed_stage: str | None,
    error: str | None,
    awaiting: bool,
) -> None:
    state = final(*events)
    got = (state.status, state.current_stage, state.failed_stage, state.error_code)
    assert got == (status, stage, failed_stage, error)
    assert state.awaiting_disambiguation is awaiting


def test_artifacts_fold_orders_by_event_time_and_keeps_first_seen() -> None:
    state = final(ev("transcription_started", 5), ev("artifact_received", 1))
    assert (state.first_event_ms, state.last_event_ms) == (T + 60_000, T + 300_000)
    assert state.last_event_type == "transcription_started"


def test_artifacts_inflight_delta_keeps_counts_exact_through_every_transition() -> None:
    """Summed commit by commit, the in-flight changes equal a recount of the notes in flight
    by (last-event minute, stage, awaiting) at each step: a note moving stage and minute,
    losing its awaiting flag, leaving and coming back; times before 1970 floor to their
    minute (-1 ms is in the minute starting at -60,000 ms)."""
    table: Counter[InflightKey] = Counter()
    states: dict[str, ArtifactState] = {}

    def put(note: str, stage: str | None, last_ms: int, awaiting: bool, status: str) -> None:
        new = ArtifactState(note, None, status, stage, "x", last_ms, last_ms,
                            awaiting_disambiguation=awaiting)  # fmt: skip
        table.update(inflight_delta(states, {note: new}))
        states[note] = new
        recount = Counter(
            (s.last_event_ms // 60_000 * 60_000, s.current_stage or "", s.awaiting_disambiguation)
            for s in states.values()
            if s.status == IN_FLIGHT
        )
        assert +table == recount and -table == Counter()

    put("a", "transcription", 5, True, IN_FLIGHT)
    put("b", None, -1, False, IN_FLIGHT)  # 1969-12-31T23:59:59.999Z, no stage yet
    assert table[(-60_000, "", False)] == 1
    put("a", "entity_resolution", 61_000, False, IN_FLIGHT)
    put("a", "entity_resolution", 61_000, False, COMPLETED)
    put("a", "drafts", 10**13 - 1, True, IN_FLIGHT)
    put("b", None, -1, False, FAILED)
    assert +table == {(9_999_999_960_000, "drafts", True): 1}
    assert inflight_delta(states, {"a": states["a"]}) == {}  # no change, no row touched


def test_artifacts_pruned_with_event_retention(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "voxmon.db")
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    cutoff = datetime_to_ms(now - timedelta(hours=48))
    states = [
        ArtifactState("old", None, IN_FLIGHT, "ingestion", "artifact_received", cutoff - 1,
                      cutoff - 1),
        ArtifactState("edge", None, IN_FLIGHT, "ingestion", "artifact_received", cutoff, cutoff),
    ]  # fmt: skip
    conn.write(lambda c: c.artifacts.save_states(states))
    outcome = cleanup.cleanup_events(conn, jobs.direct_write(conn), now, Retention())
    assert outcome.deleted == {"events": 0, "artifacts": 1}
    assert [r[0] for r in conn.connection.execute("SELECT artifact_id FROM artifacts")] == ["edge"]
    conn.close()


def _table(database_url: str, tmp_path: Path) -> Counter[InflightKey]:
    found = rows(database_url, tmp_path, "SELECT minute_ms, stage, awaiting, notes"
                 " FROM inflight_minutes")  # fmt: skip
    return Counter({(r["minute_ms"], r["stage"], bool(r["awaiting"])): r["notes"] for r in found})


def _recount(database_url: str, tmp_path: Path) -> Counter[InflightKey]:
    found = rows(database_url, tmp_path, "SELECT current_stage, last_event_ms,"
                 " awaiting_disambiguation FROM artifacts WHERE status = 'in_flight'")  # fmt: skip
    return Counter(
        (r["last_event_ms"] // 60_000 * 60_000, r["current_stage"] or "",
         bool(r["awaiting_disambiguation"]))
        for r in found
    )  # fmt: skip


def _wire(note: str, event_type: str, seconds_ago: float, **extra: Any) -> dict[str, Any]:
    at = T0 - timedelta(seconds=seconds_ago)
    return make_event(event_id=f"{note}-{event_type}-{seconds_ago}", event_type=event_type,
                      timestamp=at.isoformat(), artifact_id=note, **extra)  # fmt: skip


@both
async def test_artifacts_inflight_table_equals_the_rows_and_feeds_the_gauges(
    start_app: Any, clock: FakeClock, database_url: str, tmp_path: Path
) -> None:
    """After every commit (new notes, stage moves, completion, failure and revival, a late
    event, a duplicate) the in-flight table equals a recount of the in-flight rows, and
    /metrics shows it: per stage, awaiting, and stuck exactly at the millisecond (two notes
    in the cutoff's own minute, 15 s either side of it, only the first stuck)."""
    client = await start_app()
    batches = [
        [_wire("a", "artifact_received", 1800), _wire("b", "artifact_received", 1790),
         _wire("c", "transcription_started", 1200)],
        [_wire("a", "transcription_started", 890), _wire("b", "entity_needs_disambiguation", 860),
         _wire("c", "artifact_completed", 120)],
        [_wire("d", "claims_extraction_failed", 180, error_code="E"),
         _wire("a", "artifact_received", 2400), _wire("a", "transcription_started", 890)],
        [_wire("d", "retry_initiated", 30), _wire("e", "artifact_received", 5)],
    ]  # fmt: skip
    for batch in batches:
        assert (await client.post("/v1/events", json=batch)).status == 200
        assert _table(database_url, tmp_path) == _recount(database_url, tmp_path)
    assert sum(_table(database_url, tmp_path).values()) == 4  # a, b, d, e; c completed
    clock.set(T0 + timedelta(seconds=-890 + 900 + 15))  # cutoff 15 s after a's last event
    samples = domain_samples(await scrape(client))
    inflight = {
        dict(labels)["stage"]: value
        for (name, labels), value in samples.items()
        if name == "voice_pipeline_inflight_artifacts" and value
    }
    assert inflight == {"transcription": 1.0, "entity_resolution": 1.0, "ingestion": 1.0,
                        "claims_extraction": 1.0}  # fmt: skip
    assert samples[("voice_pipeline_disambiguation_backlog", ())] == 1.0
    assert samples[("voice_pipeline_stuck_artifacts", ())] == 1.0  # a (09:45:10), not b (09:45:40)
    clock.set(T0 + timedelta(seconds=-860 + 900 + 1))
    assert domain_samples(await scrape(client))[("voice_pipeline_stuck_artifacts", ())] == 2.0


@both
def test_artifacts_inflight_table_follows_retention_and_the_migration(
    database_url: str, tmp_path: Path
) -> None:
    """Retention deletes notes and their counts together (in flight or not); the migration
    that adds the table counts the rows already there."""
    store = store_for(database_url, tmp_path)
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    cutoff = datetime_to_ms(now - timedelta(hours=48))
    states = {
        s.artifact_id: s
        for s in (
            ArtifactState("old", None, IN_FLIGHT, "ingestion", "x", cutoff - 1, cutoff - 1),
            ArtifactState("gone", None, COMPLETED, None, "x", cutoff - 5, cutoff - 5),
            ArtifactState("edge", None, IN_FLIGHT, "ingestion", "x", cutoff, cutoff),
            ArtifactState("new", None, IN_FLIGHT, None, "x", cutoff + 61_000, cutoff,
                          awaiting_disambiguation=True),
        )
    }  # fmt: skip

    def save(c: Any) -> None:
        c.artifacts.save_states(states.values())
        c.artifacts.add_inflight(inflight_delta({}, states))

    store.write(save)
    outcome = cleanup.cleanup_events(store, jobs.direct_write(store), now, Retention())
    assert outcome.deleted == {"events": 0, "artifacts": 2}
    assert (
        _table(database_url, tmp_path)
        == _recount(database_url, tmp_path)
        == {
            (cutoff - cutoff % 60_000, "ingestion", False): 1,
            (cutoff + 61_000 - (cutoff + 61_000) % 60_000, "", True): 1,
        }
    )
    store.write(lambda c: c.artifacts.add_inflight({}))  # nothing to apply: no statement fails
    migrations = (sqlite_schema if not database_url else postgres_schema).MIGRATIONS
    (migration,) = [m for m in migrations if "CREATE TABLE inflight_minutes" in m]
    script(database_url, tmp_path, "DROP TABLE inflight_minutes;\n" + migration)
    assert _table(database_url, tmp_path) == _recount(database_url, tmp_path)
    store.close()


OLDER_ENTRY = msgspec.msgpack.encode([[], [], [], 0, [["b", "in_flight", "ingestion", T, False]]])
"""A journal entry as voxmon versions before the in-flight table wrote them: per-note
in-flight changes, and no change to the table."""


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_artifacts_inflight_table_heals_after_an_older_replica_commits(
    start_app: Any, database_url: str, tmp_path: Path
) -> None:
    """During a rolling upgrade a replica of the previous version stores notes without
    changing the table; the next commit of a replica of this version that reads its
    journal entry recounts the table in its own transaction."""
    client = await start_app()
    assert (
        await client.post("/v1/events", json=[_wire("a", "artifact_received", 60)])
    ).status == 200
    older = store_for(database_url, tmp_path)

    def older_commit(c: Any) -> None:
        c.artifacts.save_states([ArtifactState("b", None, IN_FLIGHT, "ingestion", "x", T, T)])
        c.live.journal(OLDER_ENTRY, T)

    older.write(older_commit)
    older.close()
    assert _table(database_url, tmp_path) != _recount(database_url, tmp_path)
    assert (
        await client.post("/v1/events", json=[_wire("c", "artifact_received", 30)])
    ).status == 200
    assert sum(_table(database_url, tmp_path).values()) == 3
    assert _table(database_url, tmp_path) == _recount(database_url, tmp_path)


@both
def test_artifacts_retention_drops_counts_of_minutes_it_emptied(
    database_url: str, tmp_path: Path
) -> None:
    """Counts of whole minutes before the retention cutoff are dropped once retention has
    deleted every note before it, even counts no note matches (a note deleted by a
    previous version's `voxmon cleanup`, which left the table as it was)."""
    store = store_for(database_url, tmp_path)
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    cutoff = datetime_to_ms(now - timedelta(hours=48))
    edge = cutoff - cutoff % 60_000
    stale = {(edge - 60_000, "ingestion", False): 2, (edge, "ingestion", False): 1}
    store.write(lambda c: c.artifacts.add_inflight(stale))
    store.write(
        lambda c: c.artifacts.save_states(
            [ArtifactState("edge", None, IN_FLIGHT, "ingestion", "x", cutoff, cutoff)]
        )
    )
    cleanup.cleanup_events(store, jobs.direct_write(store), now, Retention())
    assert _table(database_url, tmp_path) == _recount(database_url, tmp_path)
    store.close()


async def test_artifacts_follower_asks_for_a_recount_after_an_older_entry() -> None:
    """An earlier version's entry applied by the journal follower (not read by a commit)
    makes the next commit recount the in-flight table; entries of this version do not."""
    import asyncio

    from exporter.ingest.follow import Follower
    from exporter.live import journal
    from exporter.live.state import LiveState
    from exporter.live.tally import Tally
    from rollup.live_latency import LatencyWindows

    class Reads:
        def __init__(self, *bodies: bytes) -> None:
            self.bodies = bodies

        async def run(self, fn: object, after: int) -> tuple[int, list[Any]]:
            return 0, [(after + 1 + i, journal.decode(b)) for i, b in enumerate(self.bodies)]

    live = LiveState(100, 100, LatencyWindows())
    current = journal.encode(Tally())
    follower = Follower(live, Reads(current), FakeClock(T0), asyncio.Lock())  # type: ignore[arg-type]
    assert await follower.catch_up() == 1 and not live.recount_inflight
    follower = Follower(live, Reads(OLDER_ENTRY, current), FakeClock(T0), asyncio.Lock())  # type: ignore[arg-type]
    assert await follower.catch_up() == 2 and live.recount_inflight


def test_artifacts_stuck_edge_reads_one_minute_of_the_last_event_index(tmp_path: Path) -> None:
    """The notes of the cutoff's own minute are counted through the last-event index: by
    the status index SQLite would read every note in flight on every scrape (2 s with 1M)."""
    store = open_store(tmp_path / "voxmon.db")
    run: list[str] = []
    store.connection.set_trace_callback(run.append)
    store.artifacts.inflight_figures(T)
    store.connection.set_trace_callback(None)
    (edge,) = [sql for sql in run if "FROM artifacts" in sql]
    plan = store.connection.execute("EXPLAIN QUERY PLAN " + edge).fetchall()
    assert [row[3] for row in plan] == [
        "SEARCH artifacts USING INDEX artifacts_by_last_event (last_event_ms>? AND last_event_ms<?)"
    ]
    store.close()


def test_artifacts_fold_gives_frozen_states_outside_the_cycle_collector() -> None:
    """States the writer builds per note: equal when equal, unchangeable, never walked by
    the cycle collector (docs/decisions/hot-path-structs.md)."""
    state = final(ev("transcription_started", 5), ev("artifact_received", 1))
    again = final(ev("transcription_started", 5), ev("artifact_received", 1))
    assert state == again and hash(state) == hash(again)
    assert not gc.is_tracked(state)
    with pytest.raises(AttributeError):
        state.status = COMPLETED  # type: ignore[misc]
    moved = fold({state.artifact_id: state}, [ev("transcription_completed", 7)])
    assert moved[state.artifact_id].current_stage == "transcription"
    assert moved[state.artifact_id].last_event_ms == T + 420_000
    assert state == again  # the state folded from is left as it was


def test_artifacts_fold_copies_a_known_state_field_by_field_both_ways() -> None:
    """A known state goes through the fold's working copy and back: an older event moves
    only the first-seen time; a newer failure sets its stage and error code, each in its
    own field."""
    known = ArtifactState(
        "n1", "org-x", IN_FLIGHT, "transcription", "transcription_started", T + 600_000,
        T + 60_000, None, "E1", True,
    )  # fmt: skip
    older = fold({"n1": known}, [ev("artifact_received", 0)])["n1"]
    assert older == msgspec.structs.replace(known, first_event_ms=T)
    failed = fold({"n1": known}, [ev("claims_extraction_failed", 11, error_code="E42")])["n1"]
    assert failed == ArtifactState(
        "n1", "org-x", FAILED, "claims_extraction", "claims_extraction_failed", T + 660_000,
        T + 60_000, "claims_extraction", "E42", True,  # an earlier stage keeps it waiting
    )  # fmt: skip
