"""Three ``voxmon serve`` replicas on one fresh PostgreSQL database (issue 13), as real
processes: batches with duplicates spread over them, the leader SIGKILLed mid-stream and
restarted under its instance id, every batch replayed until acknowledged. Then: each event
stored once, the counters summed over the replicas equal the stored events, every snapshot
equals the brute-force reference, no window written twice, the same realtime figures from
every replica; and a killed leader's next hourly job runs once, on another replica."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.timestamps import parse_timestamp
from tests.backends import fresh_database, rows
from tests.reference import ORGS, check_all_snapshots, recent_batches
from tests.replicas import (
    Cluster,
    Deliveries,
    JobLine,
    Replica,
    get_json,
    job_lines,
    job_status,
    leaders,
    one_leader,
    poll,
    ran_since,
    replay,
    replica_set,
    report,
    schedule,
    scrape,
    spread,
    value,
)
from tests.tools import http

pytestmark = pytest.mark.slow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Ingested:
    """The replicas once every batch was acknowledged, and what was sent."""

    cluster: Cluster
    database_url: str
    batches: list[list[dict[str, Any]]]
    unique: dict[str, dict[str, Any]]
    deliveries: Deliveries
    after_ingest: dict[Path, int]
    """Log offsets once every batch was acknowledged."""


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingested]:
    """Three replicas whose jobs only run their catch-up (at start, on taking the lead).
    Nine tenths of the batches spread over them, the leader SIGKILLed when half of those are
    answered and restarted at once; the new leader's catch-up awaited; then every batch
    replayed, the last tenth sent for the first time (late for the catch-up)."""
    directory, now = tmp_path_factory.mktemp("replicas"), datetime.now(UTC)
    batches = recent_batches(now, notes=400, seed=13)
    unique = {e["event_id"]: e for batch in batches for e in batch}
    late = len(batches) // 10
    with (
        fresh_database() as url,
        replica_set(directory, url, schedule(now), flag=False) as cluster,
    ):
        victim, deliveries = one_leader(cluster.replicas), Deliveries()
        killed = [datetime.now(UTC)]

        def kill_and_restart() -> None:
            killed[0] = datetime.now(UTC)
            cluster.kill(victim)
            cluster.start(victim)

        spread(cluster, batches[:-late], deliveries, kill_and_restart)
        successor = one_leader(cluster.replicas)
        for name in ("rollup-hourly", "rollup-daily"):
            poll(f"{successor.instance_id}'s catch-up of {name}",
                 lambda n=name: ran_since(successor, n, killed[0]))  # fmt: skip
        first_pass = len(deliveries.answers)
        replay(cluster, batches, deliveries)
        report(
            f"\n{len(batches)} batches ({late} held back until the replay),"
            f" {sum(map(len, batches))} events posted, {len(unique)} unique; leader"
            f" {victim.instance_id} SIGKILLed and restarted, then leader"
            f" {successor.instance_id}; {first_pass} batches acknowledged before the replay,"
            f" {deliveries.unanswered} posts unanswered"
        )
        yield Ingested(cluster, url, batches, unique, deliveries, cluster.log_sizes())


def test_replicas_store_every_acknowledged_event_once(ingested: Ingested) -> None:
    stored = rows(
        ingested.database_url, Path(), "SELECT event_id, COUNT(*) AS n FROM events GROUP BY 1"
    )
    copies = {row["event_id"]: row["n"] for row in stored}
    deliveries = ingested.deliveries
    assert sorted(deliveries.answers) == list(range(len(ingested.batches)))
    for index, answers in deliveries.answers.items():
        sizes = {(a["accepted"] + a["duplicates"], len(a["rejected"])) for a in answers}
        assert sizes == {(len(ingested.batches[index]), 0)}
    accepted, duplicates = deliveries.total("accepted"), deliveries.total("duplicates")
    report(
        f"stored {len(copies)} unique events in {sum(copies.values())} rows, at most"
        f" {max(copies.values())} per event_id; answers: {accepted} accepted,"
        f" {duplicates} duplicates"
    )
    assert set(copies) == set(ingested.unique)
    assert set(copies.values()) == {1}
    # each event is accepted once; only a batch committed as its replica died lost its answer
    assert accepted <= len(ingested.unique)


def test_replica_counters_sum_to_the_unique_events(ingested: Ingested) -> None:
    expected = Counter(e["event_type"] for e in ingested.unique.values())
    summed: Counter[str] = Counter()
    for replica in ingested.cluster.replicas:
        mine = {
            dict(labels)["event_type"]: number
            for (name, labels), number in scrape(replica).items()
            if name == "voice_pipeline_events_total"
        }
        report(f"{replica.instance_id} voice_pipeline_events_total {sum(mine.values()):.0f}")
        summed.update(mine)
    report(
        f"voice_pipeline_events_total summed over the replicas {sum(summed.values()):.0f},"
        f" unique events {len(ingested.unique)}, {len(expected)} event types"
    )
    assert dict(summed) == {t: float(n) for t, n in expected.items()}


def realtime(replica: Replica) -> list[dict[str, Any]]:
    scopes = [""] + [f"?org_id={org}" for org in ORGS if org]
    return [get_json(replica, f"/v1/metrics/realtime{scope}") for scope in scopes]


def test_realtime_is_the_same_from_every_replica(ingested: Ingested) -> None:
    """Whole bodies, platform and every org: none has a per-replica field (the window bounds
    are the request's minute; a pass that straddles a minute boundary is asked again)."""
    replicas, seen = ingested.cluster.replicas, []

    def differences() -> dict[tuple[str, str | None], dict[str, Any]]:
        seen[:] = [realtime(r) for r in replicas]
        return {
            (r.instance_id, body["org_id"]): {k: v for k, v in body.items() if v != first[k]}
            for r, bodies in zip(replicas, seen, strict=True)
            for body, first in zip(bodies, seen[0], strict=True)
            if body != first
        }

    try:
        poll("the same realtime bodies from every replica", lambda: not differences(), 5)
    except AssertionError:
        assert differences() == {}
    platform = seen[0][0]
    start, end = (parse_timestamp(platform[k]) for k in ("window_start", "window_end"))
    inside = Counter(
        e["event_type"]
        for e in ingested.unique.values()
        if start <= parse_timestamp(e["timestamp"]) < end
    )
    got = [platform[f"artifacts_{k}_1h"] for k in ("received", "completed", "failed")]
    report(
        f"realtime identical from {len(replicas)} replicas in {len(seen[0])} scopes; platform"
        f" artifacts received, completed, failed in the hour: {got}"
    )
    assert got == [inside[f"artifact_{k}"] for k in ("received", "completed", "failed")]
    assert got[0] > 0


def closed_windows(events: list[dict[str, Any]], size_ms: int, now_ms: int) -> set[int]:
    """Starts of the windows of ``size_ms`` (an hour, a UTC day) holding an event, closed."""
    starts = {parse_timestamp(e["timestamp"]) // size_ms * size_ms for e in events}
    return {start for start in starts if start + size_ms <= now_ms}


def snapshot_windows(database_url: str, period: str) -> set[int]:
    sql = "SELECT DISTINCT period_start_ms AS start FROM snapshots WHERE period = ?"
    return {row["start"] for row in rows(database_url, Path(), sql, period)}


def overlapping(lines: list[JobLine]) -> list[tuple[JobLine, JobLine]]:
    """Pairs of runs that may have written a window twice. A run logs only its first and
    last window and a count (an hourly run lists its hours, then the days it rewrote), so
    each run is taken to span every window from its earliest to its latest logged one:
    no overlap proves no window was written twice."""
    spans = [(min(x.first, x.last), max(x.first, x.last), x) for x in lines if x.first and x.last]
    return [
        (a, b)
        for (a_first, a_last, a), (b_first, b_last, b) in itertools.combinations(spans, 2)
        if a_first <= b_last and b_first <= a_last
    ]


def test_rollups_through_the_leader_equal_the_reference_once_per_window(
    ingested: Ingested,
) -> None:
    """After ingest the hourly and daily rollups run once, through the leader: every
    snapshot equals the brute-force reference, every closed window with events has one,
    and no run logged since ingest wrote a window another one wrote."""
    cluster, url = ingested.cluster, ingested.database_url
    led = leaders(cluster.replicas)
    through = led[0] if len(led) == 1 else cluster.replicas[0]
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    for name in ("rollup-hourly", "rollup-daily"):
        status, _, body = http("POST", f"{through.url}/v1/rollups/{name}/run")
        assert (status, json.loads(body)["result"]) == (200, "success"), body
    hourly_rows, daily_rows = check_all_snapshots(url, Path())
    events = list(ingested.unique.values())
    hours, days = (closed_windows(events, size, now_ms) for size in (3_600_000, 86_400_000))
    runs = [line for line in job_lines(ingested.after_ingest) if line.job.startswith("rollup-")]
    report(
        f"snapshots equal to the reference: {hourly_rows} hourly and {daily_rows} daily rows;"
        f" {len(hours)} closed hours and {len(days)} closed days hold events; runs since"
        f" ingest (job, trigger, instance, windows): "
        f"{[(r.job, r.trigger, r.instance, r.count) for r in runs]}"
    )
    assert hours <= snapshot_windows(url, "hourly") and len(hours) >= 24
    assert days <= snapshot_windows(url, "daily") and len(days) >= 1
    for name in ("rollup-hourly", "rollup-daily"):
        assert overlapping([r for r in runs if r.job == name]) == []
    assert runs and runs[0].count > 0  # the late batches dirtied windows the catch-up wrote
    assert [(r.job, r.trigger, r.instance) for r in runs] == [
        ("rollup-hourly", "api", through.instance_id),
        ("rollup-daily", "api", through.instance_id),
    ]
    assert [r.instance_id for r in led] == [through.instance_id]


# ---- leader failover -----------------------------------------------------------------------


def hourly_runs(replica: Replica) -> float | None:
    return value(scrape(replica), "voxmon_rollup_runs_total", job="rollup-hourly", result="success")


def minute(when: datetime) -> datetime:
    return when.replace(second=0, microsecond=0)


def away_from_a_fire() -> None:
    """Wait while a minute boundary is under 2 s away (a run of the old leader then would
    race the kill)."""
    second = datetime.now(UTC).second
    if second >= 58 or second < 2:
        threading.Event().wait((62 - second) % 60)


def scheduled_hourly(replicas: list[Replica], since: datetime) -> list[JobLine]:
    logs = {log: 0 for replica in replicas for log in replica.logs}
    return [
        line
        for line in job_lines(logs)
        if line.job == "rollup-hourly" and line.trigger == "schedule" and line.started >= since
    ]


def test_killed_leader_next_hourly_job_runs_once_on_another_replica(tmp_path: Path) -> None:
    """``rollup-hourly`` fires every minute. The leader is SIGKILLed; a survivor takes the
    job lock, runs its catch-up, then every fire, each once across all replicas."""
    config = schedule(datetime.now(UTC), **{"rollup-hourly": "* * * * *"})
    with fresh_database() as url, replica_set(tmp_path, url, config) as cluster:
        leader = one_leader(cluster.replicas)
        survivors = [r for r in cluster.replicas if r is not leader]
        poll("the leader's start-up hourly run", lambda: ran_since(leader, "rollup-hourly", EPOCH))
        away_from_a_fire()
        before, killed = hourly_runs(survivors[0]), datetime.now(UTC)
        cluster.kill(leader)
        successor = one_leader(survivors)
        fire = minute(datetime.now(UTC)) + timedelta(minutes=1)
        poll(
            "a scheduled hourly run after the minute the successor took over in",
            lambda: any(line.started >= fire for line in scheduled_hourly(survivors, killed)),
            timeout_s=90,
        )
        threading.Event().wait(2)  # a second replica firing too would have logged by now
        lines = scheduled_hourly(survivors, killed)
        after, status = hourly_runs(survivors[0]), job_status(survivors[0], "rollup-hourly")
    fires = Counter(minute(line.started) for line in lines)
    report(
        f"leader {leader.instance_id} SIGKILLed at {killed:%H:%M:%S}, successor"
        f" {successor.instance_id}; voxmon_rollup_runs_total hourly {before} -> {after};"
        f" scheduled hourly runs since: {[(f'{x.started:%H:%M:%S}', x.instance) for x in lines]}"
    )
    assert {line.instance for line in lines} == {successor.instance_id}
    assert {line.log for line in lines} <= set(successor.logs)
    assert set(fires.values()) == {1} and len(fires) >= 2  # the catch-up, then each fire
    assert (before or 0) + len(lines) == after
    assert status["last_run"]["instance"] == successor.instance_id
