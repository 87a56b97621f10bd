"""Live state and the organisation caps: orgs beyond ``max_live_orgs`` share the
``__other__`` live window (gauge and realtime) while storage and snapshots keep each one;
first-seen order survives a restart; the state stays bounded; a new org costs O(1) SQL."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec

from exporter.http.context import BACKEND, LIVE
from exporter.live import journal
from exporter.live.state import LiveState
from exporter.live.tally import Tally
from rollup import jobs
from rollup.live_latency import LatencyWindows
from tests.backends import both, sqlite_only
from tests.conftest import T0, T0_MS, make_event
from tests.scrape import samples, scrape
from tests.tools import open_store

pytestmark = both

ORGS = ["org-1", "org-2", "org-3", "org-4", "org-5"]
RECEIVED = ("counter", "artifacts_received")


def by_org(found: dict[Any, float], name: str, *labels: tuple[str, str]) -> dict[str, float]:
    """``org_id`` -> value of the samples of ``name`` carrying ``labels``."""
    return {
        dict(key)["org_id"]: value
        for (sample, key), value in found.items()
        if sample == name and all(label in key for label in labels)
    }


async def realtime(client: Any, org_id: str | None = None) -> tuple[int, dict[str, Any]]:
    params = {"org_id": org_id} if org_id else {}
    response = await client.get("/v1/metrics/realtime", params=params)
    return response.status, await response.json()


def notes(org: str, count: int, cost: float = 0.25) -> list[dict[str, Any]]:
    return [
        make_event(org_id=org, artifact_id=f"{org}-{i}", metadata={"ai_cost_usd": cost})
        for i in range(count)
    ]


# --- the cap over the live app ---------------------------------------------------------------


@sqlite_only
async def test_live_cap_puts_later_orgs_in_other_and_snapshots_keep_each(
    start_app: Any, tmp_path: Path
) -> None:
    client = await start_app(max_live_orgs=3)
    batch = [event for k, org in enumerate(ORGS, start=1) for event in notes(org, k)]
    assert (await (await client.post("/v1/events", json=batch)).json())["accepted"] == 15

    found = samples(await scrape(client))
    window = by_org(found, "voice_pipeline_window_events", RECEIVED)
    assert window == {"": 15.0, "org-1": 1.0, "org-2": 2.0, "org-3": 3.0, "__other__": 9.0}
    assert sum(value for org, value in window.items() if org) == window[""]
    cost = by_org(found, "voice_pipeline_window_events", ("counter", "ai_cost_usd"))
    assert cost["__other__"] == 2.25
    # The counters follow max_org_series (100 here): every org keeps its own series.
    received = by_org(found, "voice_pipeline_artifacts_total", ("outcome", "received"))
    assert received == {"org-1": 1.0, "org-2": 2.0, "org-3": 3.0, "org-4": 4.0, "org-5": 5.0}

    live = {org: (await realtime(client, org))[1]["artifacts_received_1h"] for org in ORGS[:3]}
    other = (await realtime(client, "__other__"))[1]
    platform = (await realtime(client))[1]
    assert live == {"org-1": 1, "org-2": 2, "org-3": 3}
    assert (other["artifacts_received_1h"], other["ai_cost_usd_1h"]) == (9, 2.25)
    assert sum(live.values()) + other["artifacts_received_1h"] == platform["artifacts_received_1h"]
    for org in ("org-4", "org-5"):
        status, body = await realtime(client, org)
        assert (status, body["error"]["code"]) == (404, "org_not_live")
        assert "max_live_orgs" in body["error"]["message"]
        assert body["error"]["details"] == [
            {"field": "org_id", "message": "not tracked live (beyond max_live_orgs=3)"}
        ]
    assert (await realtime(client, "org-never-seen"))[0] == 404  # the cap is reached

    conn = open_store(tmp_path / "voxmon.db")
    try:
        jobs.rollup_hour(conn, jobs.direct_write(conn), T0, T0 + timedelta(hours=1))
        rows = dict(conn.connection.execute("SELECT scope, artifacts_received FROM snapshots"))
    finally:
        conn.close()
    assert rows == {"": 15, "org-1": 1, "org-2": 2, "org-3": 3, "org-4": 4, "org-5": 5}
    assert sum(value for scope, value in rows.items() if scope) == rows[""]


async def test_live_org_never_seen_before_the_cap_reads_zero(start_app: Any) -> None:
    client = await start_app(max_live_orgs=3)
    await client.post("/v1/events", json=notes("org-1", 1))
    status, body = await realtime(client, "org-2")
    assert (status, body["artifacts_received_1h"], body["scope"]) == (200, 0, "org")


async def test_live_first_seen_order_survives_restart(start_app: Any) -> None:
    caps = {"max_live_orgs": 2, "max_org_series": 2}
    client = await start_app(**caps)
    for org in ("org-b", "org-a", "org-c"):  # arrival order, not name order, decides
        await client.post("/v1/events", json=notes(org, 1))
    before = samples(await scrape(client))
    assert by_org(before, "voice_pipeline_artifacts_total") == {
        "org-b": 1.0, "org-a": 1.0, "__other__": 1.0,
    }  # fmt: skip
    await client.close()

    restarted = await start_app(**caps)
    for org in ("org-c", "org-a", "org-d"):
        await restarted.post("/v1/events", json=notes(f"{org}", 1, cost=0.5))
    after = samples(await scrape(restarted))
    assert by_org(after, "voice_pipeline_artifacts_total") == {
        "org-b": 1.0, "org-a": 2.0, "__other__": 3.0,
    }  # fmt: skip
    assert by_org(after, "voice_pipeline_ai_cost_usd_total") == {
        "org-b": 0.25, "org-a": 0.75, "__other__": 1.25,
    }  # fmt: skip
    assert by_org(after, "voice_pipeline_window_events", RECEIVED) == {
        "": 6.0, "org-b": 1.0, "org-a": 2.0, "__other__": 3.0,
    }  # fmt: skip
    assert (await realtime(restarted, "org-a"))[1]["artifacts_received_1h"] == 2
    assert [(await realtime(restarted, org))[0] for org in ("org-c", "org-d")] == [404, 404]
    assert self_gauges(after) == {
        "voxmon_live_orgs": 2.0, "voxmon_live_orgs_limit": 2.0, "voxmon_orgs_seen": 4.0,
    }  # fmt: skip


def self_gauges(found: dict[Any, float]) -> dict[str, float]:
    names = ("voxmon_live_orgs", "voxmon_live_orgs_limit", "voxmon_orgs_seen")
    return {name: value for (name, _), value in found.items() if name in names}


async def test_live_org_metrics_count_live_and_seen_orgs(start_app: Any) -> None:
    client = await start_app(max_live_orgs=3)
    assert self_gauges(samples(await scrape(client))) == {
        "voxmon_live_orgs": 0.0, "voxmon_live_orgs_limit": 3.0, "voxmon_orgs_seen": 0.0,
    }  # fmt: skip
    await client.post("/v1/events", json=[e for org in ORGS for e in notes(org, 1)])
    assert self_gauges(samples(await scrape(client))) == {
        "voxmon_live_orgs": 3.0, "voxmon_live_orgs_limit": 3.0, "voxmon_orgs_seen": 5.0,
    }  # fmt: skip
    # org-5 is beyond the cap and already stored: it must not count twice; org-6 is new.
    await client.post("/v1/events", json=[make_event(org_id="org-5"), make_event(org_id="org-6")])
    assert self_gauges(samples(await scrape(client)))["voxmon_orgs_seen"] == 6.0


async def test_live_state_stays_bounded_beyond_the_caps(start_app: Any) -> None:
    client = await start_app(max_live_orgs=3, max_org_series=2)
    events = []
    for n in range(200):
        common = {"org_id": f"org-{n}", "artifact_id": f"a-{n}"}
        events += [
            make_event(event_type="artifact_received", **common),
            make_event(event_type="transcription_completed", duration_ms=900, **common),
            make_event(event_type="artifact_completed", metadata={"ai_cost_usd": 0.1}, **common),
        ]
    assert (await (await client.post("/v1/events", json=events)).json())["accepted"] == 600
    live = client.app[LIVE]
    assert (len(live.orgs), live.orgs.seen) == (3, 200)
    assert set(live.windows.scopes()) == {"", "org-0", "org-1", "org-2", "__other__"}
    assert set(live.series_windows.scopes()) == {"", "org-0", "org-1", "__other__"}
    org_values = {key[index] for key in live.counters for index in org_index(key)}
    assert org_values == {"org-0", "org-1", "__other__"}
    # 3 event types, then per label (3): received/completed, transcription success, cost;
    # and the two histograms (one bucket, sum, count each): nothing per org beyond the caps.
    assert len(live.counters) == 3 + 3 * 4 + 2 * 3


def org_index(key: tuple[str, ...]) -> list[int]:
    positions = {"artifacts_total": 1, "stage_outcomes_total": 3, "ai_cost_usd_total": 1}
    return [positions[key[0]]] if key[0] in positions else []


# --- O(1) SQL per new organisation ------------------------------------------------------------


@sqlite_only
async def test_live_new_org_commit_costs_the_same_however_many_orgs_exist(
    start_app: Any, tmp_path: Path
) -> None:
    """SQLite virtual-machine steps to commit one batch of 20 new orgs' events, after 500,
    2,500 and 4,500 orgs: equal, so nothing scans a table that grows with orgs; and no
    statement of that commit that reads the org order has a SCAN in its plan."""
    client = await start_app(max_live_orgs=10)
    db = client.app[BACKEND].writes
    costs, statements = [], []
    for level in range(3):
        fill = [make_event(org_id=f"fill-{level}-{n}", artifact_id="a") for n in range(2000)]
        assert (await client.post("/v1/events", json=fill[: 500 if level == 0 else 2000])).ok
        steps = [0]

        def tick(steps: list[int] = steps) -> int:
            steps[0] += 1
            return 0

        await db.run(lambda store, tick=tick: store.connection.set_progress_handler(tick, 1))
        await db.trace(statements.append)
        batch = [make_event(org_id=f"new-{level}-{n}", artifact_id="a") for n in range(20)]
        assert (await (await client.post("/v1/events", json=batch)).json())["accepted"] == 20
        await db.trace(None)
        await db.run(lambda store: store.connection.set_progress_handler(None, 1))
        costs.append(steps[0])
    assert costs[0] == costs[1] == costs[2] > 0
    with sqlite3.connect(tmp_path / "voxmon.db") as conn:
        plans = [
            " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in statements
            if "org_series" in sql
        ]
    assert plans and not [plan for plan in plans if "SCAN" in plan]


# --- LiveState on its own ------------------------------------------------------------------------


def test_live_load_folds_rows_persisted_under_other_caps() -> None:
    """A database written before the caps (or under larger ones) holds per-org counters and
    window buckets; loading folds them under today's labels and scopes, sums unchanged."""
    live = LiveState(max_org_series=1, max_live_orgs=2, latency=LatencyWindows())
    counters = {
        ("events_total", "artifact_received"): 7.0,
        ("artifacts_total", "org-a", "received"): 1.0,
        ("artifacts_total", "org-b", "received"): 2.0,
        ("artifacts_total", "org-c", "received"): 4.0,
        ("stage_outcomes_total", "transcription", "success", "org-c"): 3.0,
        ("artifacts_total", "__other__", "received"): 5.0,
    }
    minutes = {
        ("", T0_MS, "artifacts_received"): 7.0,
        ("org-a", T0_MS, "artifacts_received"): 1.0,
        ("org-b", T0_MS, "artifacts_received"): 2.0,
        ("org-c", T0_MS, "artifacts_received"): 4.0,
    }
    live.load(counters, {}, minutes, ["org-a", "org-b"], 3)
    assert live.counters == {
        ("events_total", "artifact_received"): 7.0,
        ("artifacts_total", "org-a", "received"): 1.0,
        ("artifacts_total", "__other__", "received"): 11.0,
        ("stage_outcomes_total", "transcription", "success", "__other__"): 3.0,
    }
    totals = {scope: live.windows.totals(scope, T0_MS)["artifacts_received"] for scope in
              live.windows.scopes()}  # fmt: skip
    assert totals == {"": 7.0, "org-a": 1.0, "org-b": 2.0, "__other__": 4.0}
    series = {scope: live.series_windows.totals(scope, T0_MS)["artifacts_received"] for scope
              in live.series_windows.scopes()}  # fmt: skip
    assert series == {"": 7.0, "org-a": 1.0, "__other__": 6.0}
    assert (live.orgs.live, live.orgs.seen) == (2, 3)


def test_live_series_windows_prune_with_the_live_windows() -> None:
    live = LiveState(max_org_series=1, max_live_orgs=2, latency=LatencyWindows())
    minutes = {(scope, T0_MS, "artifacts_received"): 1.0 for scope in ("", "org-a", "org-b")}
    live.load({}, {}, minutes, ["org-a", "org-b"], 2)
    assert sorted(live.series_windows.scopes()) == ["", "__other__", "org-a"]
    live.apply(Tally(), T0_MS + 60 * 60_000)  # T0's minute has just left the window
    assert list(live.series_windows.scopes()) == list(live.windows.scopes()) == [""]


def test_live_journal_entries_of_earlier_versions_still_decode() -> None:
    """Entries written before the in-flight table carried each changed note; a replica of
    this version applies their window, latency and organisation parts and ignores those."""
    earlier = msgspec.msgpack.encode([
        [["", 60_000, "artifacts_received", 1.0]], [["transcription", 60_000, 2000.0]],
        ["org-a"], 1, [["n1", "in_flight", "transcription", 61_000, False]],
    ])  # fmt: skip
    entry = journal.decode(earlier)
    assert entry.tally().minutes == {("", 60_000, "artifacts_received"): 1.0}
    assert (entry.latencies, entry.new_orgs, entry.orgs_added) == (
        [("transcription", 60_000, 2000.0)], ["org-a"], 1,
    )  # fmt: skip
