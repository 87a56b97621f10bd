"""The PostgreSQL backend itself: versioned migrations, day partitions created ahead and
dropped by event retention, ``ON CONFLICT`` dedup, ``database_url`` selection, and
``voxmon serve`` / ``voxmon rollup`` on a fresh database."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from exporter.cli import main
from exporter.errors import ConfigError
from exporter.model import Event, Metadata
from exporter.records import EventFilter, PartsRow, SnapshotRow
from exporter.settings import Settings
from exporter.storage.location import Location
from exporter.storage.postgres import connection, schema
from exporter.storage.postgres.connection import connect
from exporter.storage.postgres.database import PgDatabase
from exporter.storage.postgres.events import LATEST_STARTS, PgEvents
from exporter.storage.postgres.partitions import DAY_MS, Partitions
from exporter.storage.postgres.pool import PgReadPool
from exporter.storage.postgres.read_ahead import SCOPE_RUNS, read_scope_runs
from exporter.storage.postgres.schema import MIGRATIONS
from exporter.storage.postgres.snapshots import ORG_TOTALS
from exporter.storage.postgres.store import PgStore
from rollup import jobs
from rollup.codec import decode_parts
from tests.backends import both, fresh_database, rows, store_for
from tests.conftest import make_event
from tests.tools import free_port, http, serving, voxmon, wait_listening

D0 = 1_795_824_000_000  # 2026-11-28T00:00Z


@pytest.fixture
def store() -> Iterator[PgStore]:
    with fresh_database() as url:
        conn = PgStore(connect(url))
        yield conn
        conn.close()


def notes(prefix: str, *times: int) -> list[Event]:
    return [Event(f"{prefix}-{i}", "artifact_received", ts, artifact_id=f"{prefix}{i}")
            for i, ts in enumerate(times)]  # fmt: skip


def test_postgres_migrations_are_versioned_and_applied_once(store: PgStore) -> None:
    conn = store.connection
    versions = [(n,) for n in range(1, len(MIGRATIONS) + 1)]
    assert len(versions) == 5
    applied = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert applied == versions
    url = conn.info.dsn
    connect(url).close()  # a second start applies nothing
    assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (5,)
    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(RuntimeError, match="newer than this voxmon"):
        connect(url)


def test_postgres_migration_kept_waiting_for_its_table_fails_the_start_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Migration 5 alters ``snapshots``: while another session holds the table (a long read
    in an open transaction) it gives up after ``LOCK_TIMEOUT`` instead of queueing every
    reader of the table behind it, and says why; once that session ends, it applies."""
    with fresh_database() as url, psycopg.connect(url, autocommit=True) as other:
        other.execute(  # back to version 4
            "ALTER TABLE snapshots ALTER COLUMN parts SET COMPRESSION pglz,"
            " ALTER COLUMN end_to_end SET COMPRESSION pglz;"
            " DELETE FROM schema_version WHERE version = 5"
        )
        monkeypatch.setattr(schema, "LOCK_TIMEOUT", "200ms")
        with other.transaction():
            other.execute("SELECT COUNT(*) FROM snapshots").fetchone()
            with pytest.raises(psycopg.OperationalError, match="migration 5 waited 200ms"):
                connect(url)
            assert other.execute("SELECT MAX(version) FROM schema_version").fetchone() == (4,)
        connect(url).close()
        assert other.execute("SELECT MAX(version) FROM schema_version").fetchone() == (5,)
        compression = (
            "SELECT attcompression FROM pg_attribute"
            " WHERE attrelid = 'snapshots'::regclass AND attname = 'parts'"
        )
        assert other.execute(compression).fetchone() == ("l",)


def test_postgres_read_ended_by_the_server_raises_the_servers_error() -> None:
    """A read whose session the server ends (``pg_terminate_backend``, a failover) raises
    what the server said, not the closed connection's error on ending the transaction."""
    with fresh_database() as url, psycopg.connect(url, autocommit=True) as admin:
        store = PgStore(connect(url))
        pid = store.connection.info.backend_pid
        with pytest.raises(psycopg.errors.AdminShutdown), store.read_transaction():
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            store.snapshots.snapshot_rows("hourly", 0, 1)
        assert store.connection.closed
        store.close()


def test_postgres_daily_rollup_reads_scope_after_scope_from_an_index(store: PgStore) -> None:
    """The daily job's read streams from ``snapshots_by_scope`` in (scope, start) order with
    no sort, even on statistics that know nothing of the rows (never analyzed here: left
    to itself the planner sorts them), and leaves sorts on for the rest of the transaction."""
    parts = random.Random(0).randbytes(1500)  # as wide as real parts, which makes a sort look cheap
    for start in range(D0, D0 + 3 * DAY_MS, 3_600_000):
        hour = [SnapshotRow("hourly", start, f"org-{o:02d}", 1, 1, 0, 0.5, parts, None)
                for o in range(30)]  # fmt: skip
        store.write(lambda s, t=start, f=hour: s.snapshots.replace_snapshots("hourly", t, f))
    conn, args = store.connection, ("hourly", D0 + DAY_MS, D0 + 2 * DAY_MS)
    with store.read_transaction():
        default = [row[0] for row in conn.execute(f"EXPLAIN {SCOPE_RUNS}", args)]
        conn.execute("SELECT set_config('enable_sort', 'off', true)")
        plan = [row[0] for row in conn.execute(f"EXPLAIN {SCOPE_RUNS}", args)]
        conn.execute("SELECT set_config('enable_sort', 'on', true)")
        batches: list[list[PartsRow]] = []
        read_scope_runs(conn, *args, batches.append)
        assert conn.execute("SHOW enable_sort").fetchone() == ("on",)
    assert default[0].startswith("Sort")  # what the planner would do left to itself
    assert plan[0].startswith("Index Scan using snapshots_by_scope on snapshots")
    assert not any("Sort" in line for line in plan)
    got = [row for batch in batches for row in batch]
    assert got == [(D0 + DAY_MS + h * 3_600_000, f"org-{o:02d}", parts)
                   for o in range(30) for h in range(24)]  # fmt: skip


def test_postgres_daily_read_that_cannot_start_raises_its_own_error(store: PgStore) -> None:
    """The scope-ordered read kept waiting past ``statement_timeout`` (another session holds
    the table) raises the cancel, as a busy database, not an error of the aborted
    transaction it leaves (restoring sorts there would fail)."""
    with (
        psycopg.connect(store.connection.info.dsn, autocommit=True) as other,
        other.transaction(),
    ):
        other.execute("LOCK TABLE snapshots IN ACCESS EXCLUSIVE MODE")
        store.connection.execute("SET statement_timeout = '200ms'")
        with pytest.raises(psycopg.errors.QueryCanceled), store.read_transaction():
            read_scope_runs(store.connection, "hourly", D0, D0 + DAY_MS, list)
    store.connection.execute("SET statement_timeout = 0")
    assert store.connection.execute("SHOW enable_sort").fetchone() == ("on",)


def test_postgres_snapshot_parts_and_digests_are_stored_with_lz4(store: PgStore) -> None:
    """Migration 5: a snapshot's parts and digest large enough to be compressed are
    compressed with lz4 (the server here is built with it), and read back the same."""
    big = bytes(range(256)) * 16  # compressible, and over the 2 kB a value is kept as is
    row = SnapshotRow("hourly", D0, "org-a", 1, 1, 0, 0.5, big, big[::-1])
    store.write(lambda s: s.snapshots.replace_snapshots("hourly", D0, [row]))
    found = store.connection.execute(
        "SELECT pg_column_compression(parts), pg_column_compression(end_to_end),"
        " pg_column_size(parts) < %s FROM snapshots",
        (len(big),),
    ).fetchall()
    assert found == [("lz4", "lz4", True)]
    assert store.snapshots.snapshot_rows("hourly", D0, D0 + 1) == [row]


def test_postgres_org_totals_read_only_their_index_and_sum_every_day(store: PgStore) -> None:
    """The org breakdown's totals (90 days x 40 orgs of wide daily rows) come from an
    index-only scan of ``snapshots_totals``, not from the rows' parts, and equal the sums
    of the rows written, busiest org first."""
    written: dict[str, list[int]] = {}
    for day in range(90):
        start = D0 - (90 - day) * 24 * 3_600_000
        found = [SnapshotRow("daily", start, f"org-{o:02d}", o * day, day, o % 3, 0.25,
                             bytes(1500), None) for o in range(40)]  # fmt: skip
        for r in found:
            written.setdefault(r.scope, []).append(r.artifacts_received)
        store.write(lambda s, found=found, start=start: s.snapshots.replace_snapshots(
            "daily", start, found))  # fmt: skip
    store.connection.execute("VACUUM ANALYZE snapshots")
    args = ("daily", D0 - 90 * 24 * 3_600_000, D0, 5)
    plan = "\n".join(r[0] for r in store.connection.execute("EXPLAIN " + ORG_TOTALS, args))
    assert "Index Only Scan using snapshots_totals on snapshots" in plan, plan
    totals = store.snapshots.org_totals(*args)
    assert [(t.org_id, t.received, t.completed) for t in totals] == [
        (f"org-{o}", sum(written[f"org-{o}"]), sum(range(90))) for o in (39, 38, 37, 36, 35)
    ]
    assert [t.failed for t in totals] == [0, 2 * 90, 90, 0, 2 * 90]
    assert [t.ai_cost_usd for t in totals] == [22.5] * 5


HOUR10 = datetime(2026, 11, 28, 10, tzinfo=UTC)


def hour_of_floats(store: PgStore) -> Callable[[], tuple[Any, ...]]:
    """60,000 events with float durations, costs and confidences in one hour of four orgs;
    returns a function that rolls the hour up and gives the stored rows."""
    rng = random.Random(5)
    start = int(HOUR10.timestamp() * 1000)
    events = [
        Event(f"e{i}", kind, start + rng.randrange(3_600_000), artifact_id=f"a{i}",
              org_id=f"org-{rng.randrange(4)}", stage=stage, duration_ms=rng.random() * 5e3,
              metadata=Metadata(ai_cost_usd=rng.random() / 7, confidence=rng.random()))
        for i in range(60_000)
        for kind, stage in [rng.choice([("transcription_completed", "transcription"),
                                        ("artifact_completed", None)])]
    ]  # fmt: skip
    store.write(lambda s: s.events.insert(events, 0))
    store.connection.execute("ANALYZE events")
    with store.transaction():
        store.horizons.extend_history(start)
    write = jobs.direct_write(store)

    def rolled_up() -> tuple[Any, ...]:
        assert jobs.rollup_hour(store, write, HOUR10, HOUR10 + timedelta(days=1)) == 5
        return tuple(store.connection.execute("SELECT * FROM snapshots ORDER BY scope"))

    return rolled_up


def test_postgres_hourly_rollup_stores_the_same_sums_on_every_run(store: PgStore) -> None:
    """The hourly aggregations add each group's floats in one order: run five times, the
    hour's rows are the same bytes, although this session would plan both statements on
    parallel workers (whose partial sums combine in the order the workers finish: 4
    different results from 4 runs of a 1M-event hour before)."""
    conn = store.connection
    for setting in (
        "parallel_setup_cost = 0",
        "parallel_tuple_cost = 0",
        "min_parallel_table_scan_size = 0",
        "max_parallel_workers_per_gather = 2",
    ):
        conn.execute(f"SET {setting}")
    rolled_up = hour_of_floats(store)
    plan = conn.execute("EXPLAIN SELECT org_id, SUM(ai_cost_usd) FROM events GROUP BY 1")
    assert any("Workers Planned" in line for (line,) in plan)
    found = {rolled_up() for _ in range(5)}
    assert len(found) == 1
    (rows,) = found
    assert [r[2] for r in rows] == ["", "org-0", "org-1", "org-2", "org-3"]
    assert sum(r[3] for r in rows) == 0  # received: none of these events


def test_postgres_hourly_rollup_stores_the_same_sums_whatever_the_plan(store: PgStore) -> None:
    """Statistics that change between two runs of an hour change PostgreSQL's plans (hash
    or sort aggregation, and so the order of the rows it returns and of the buckets the
    latency sums add up); the stored bytes must not change with them."""
    rolled_up = hour_of_floats(store)
    hashed = rolled_up()
    store.connection.execute("SET enable_hashagg = off")
    assert rolled_up() == hashed
    store.connection.execute("SET enable_hashagg = on")
    store.connection.execute("SET enable_sort = off")
    assert rolled_up() == hashed


def test_postgres_floats_cross_exactly_whatever_the_database_sets(store: PgStore) -> None:
    """A database (or role) may set ``extra_float_digits = 0``, 15 significant digits, as
    older clients ask: float8 columns (read as text) and the hourly sums (which read each
    float through its text) would lose their last bits. voxmon's connections, its read
    pool's included, set shortest exact text, so such a database stores and reads the
    same bytes as the default."""
    rolled_up = hour_of_floats(store)
    default = rolled_up()
    url = store.connection.info.dsn
    name = store.connection.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
    store.connection.execute(f"ALTER DATABASE {name} SET extra_float_digits = 0")
    third = "SELECT 1::float8 / 3"
    with psycopg.connect(url) as other:  # another client gets the database's setting
        assert other.execute(f"SELECT ({third})::text").fetchone() == ("0.333333333333333",)
        assert other.execute(third).fetchone() != (1 / 3,)
    with closing(connect(url)) as conn:
        again = PgStore(conn)
        assert conn.execute(third).fetchone() == (1 / 3,)
        assert (
            jobs.rollup_hour(again, jobs.direct_write(again), HOUR10, HOUR10 + timedelta(days=1))
            == 5
        )
        assert tuple(conn.execute("SELECT * FROM snapshots ORDER BY scope")) == default
    pool = PgReadPool(url, 1)
    try:
        assert pool.call(lambda s: s.connection.execute(third).fetchone()) == (1 / 3,)
    finally:
        asyncio.run(pool.close())


@both
def test_hourly_rollup_of_negative_and_positive_zeros_stores_one_result_whatever_their_order(
    database_url: str, tmp_path: Path
) -> None:
    """Durations of 0.0 and -0.0 (stored before validation turned -0.0 into 0.0) inserted
    in four orders: PostgreSQL's MIN and MAX returned whichever zero came last, so the
    digests' minimum was stored as -0.0 or 0.0 (2 tables from 4 orders); now one, the
    minimum +0 on both backends."""
    rng = random.Random(1)
    start = int(HOUR10.timestamp() * 1000)
    times = [(start + rng.randrange(3_600_000), rng.choice([0.0, -0.0, 7.5])) for _ in range(600)]
    found = set()
    with closing(store_for(database_url, tmp_path)) as store:
        with store.transaction():
            store.horizons.extend_history(start)
        for seed in range(4):
            random.Random(seed).shuffle(times)
            events = [
                Event(f"r{seed}-{i}", "artifact_completed", ts, artifact_id=f"a{i}",
                      org_id="org-z", duration_ms=d)
                for i, (ts, d) in enumerate(times)
            ]  # fmt: skip
            store.connection.execute("DELETE FROM events")  # new ids: no dedup against them
            store.write(lambda s, batch=events: s.events.insert(batch, 0))
            jobs.rollup_hour(store, jobs.direct_write(store), HOUR10, HOUR10 + timedelta(days=1))
            parts = store.snapshots.snapshot_rows("hourly", start, start + 3_600_000)
            found.add(tuple((row.scope, row.parts, row.end_to_end) for row in parts))
    assert len(found) == 1
    platform = found.pop()[0]  # scope "" first
    digest = decode_parts(platform[1]).end_to_end
    zeros = sum(1 for _, d in times if d == 0)
    assert (digest.count, digest.zero_count, digest.min, digest.max) == (600, zeros, 0.0, 7.5)
    assert math.copysign(1.0, digest.min) == 1.0


def test_postgres_events_land_in_day_partitions_created_ahead(store: PgStore) -> None:
    store.write(lambda s: s.events.insert(notes("a", D0 + 5, D0 + DAY_MS + 7), 0))
    names = list(Partitions(store.connection).existing().values())
    assert names == ["events_20261128", "events_20261129", "events_20261130"]
    per_partition = store.connection.execute(
        "SELECT tableoid::regclass::text, count(*) FROM events GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert per_partition == [("events_20261128", 1), ("events_20261129", 1)]


def test_postgres_partitions_of_a_rolled_back_commit_are_created_again(store: PgStore) -> None:
    """A commit that created a day's partition and then failed (a group commit retried one
    request at a time) rolled the partition back too: the next commit of that day creates it
    again instead of failing on every event of the day."""

    def poisoned(s: PgStore) -> None:
        s.events.insert(notes("p", D0 + 5), 0)
        raise ValueError("injected: a later statement of the commit fails")

    with pytest.raises(ValueError, match="injected"):
        store.write(poisoned)
    store.write(lambda s: s.events.insert(notes("g", D0 + 6), 0))
    assert store.connection.execute("SELECT event_id FROM events").fetchall() == [("g-0",)]


def test_postgres_duplicate_ids_are_stored_once_on_conflict(store: PgStore) -> None:
    store.write(lambda s: s.events.insert(notes("d", D0 + 1), 0))
    store.write(lambda s: s.events.insert(notes("d", D0 + 2), 0))  # same id, another writer
    assert store.connection.execute("SELECT event_id, ts_ms FROM events").fetchall() == [
        ("d-0", D0 + 1)
    ]
    assert store.events.existing_ids(["d-0", "d-9"]) == {"d-0"}


def test_postgres_event_retention_drops_whole_days_then_deletes_the_rest(
    store: PgStore,
) -> None:
    day1, day2 = D0, D0 + DAY_MS
    store.write(lambda s: s.events.insert(notes("r", day1, day1 + 9, day2 + 1, day2 + 50), 0))
    cutoff = day2 + 10
    assert store.events.count_before(cutoff) == 3
    first = store.write(lambda s: s.events.delete_before(cutoff, 1000))
    assert first == 2  # the whole first day, its partition dropped
    assert "events_20261128" not in Partitions(store.connection).existing().values()
    assert store.write(lambda s: s.events.delete_before(cutoff, 1000)) == 1  # day 2's row
    assert store.write(lambda s: s.events.delete_before(cutoff, 1000)) == 0
    assert store.connection.execute("SELECT event_id FROM events").fetchall() == [("r-3",)]
    assert store.events.existing_ids(["r-0", "r-2", "r-3"]) == {"r-3"}  # ids freed with rows


@pytest.mark.parametrize(
    ("url", "kind", "target"),
    [
        ("", "sqlite", "voxmon.db"),
        ("data/v.db", "sqlite", "data/v.db"),
        ("sqlite:///data/v.db", "sqlite", "data/v.db"),
        ("sqlite:////var/lib/v.db", "sqlite", "/var/lib/v.db"),
        ("postgresql://u@db:5432/voxmon", "postgres", "postgresql://u@db:5432/voxmon"),
        ("postgres://u@db/voxmon", "postgres", "postgres://u@db/voxmon"),
    ],
)
def test_settings_database_url_selects_the_backend(url: str, kind: str, target: str) -> None:
    settings = Settings.load(None, {"VOXMON_DATABASE_URL": url} if url else {})
    assert settings.location == Location(kind, target)  # type: ignore[arg-type]
    if kind == "sqlite":
        assert settings.db_path == target


def test_settings_database_url_refuses_other_schemes_and_hides_passwords() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(None, {}, {"database_url": "mysql://db/voxmon"})
    assert caught.value.problems == [
        "database_url: unsupported scheme 'mysql'; use a path, sqlite:///path or postgresql://..."
    ]
    shown = Location("postgres", "postgresql://u:s3cret@db:5432/v").shown
    assert shown == "postgresql://u:***@db:5432/v"


def test_serve_on_a_fresh_postgres_database_creates_the_schema_and_serves(
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with fresh_database() as url:
        with psycopg.connect(url, autocommit=True) as admin:  # truly empty: no template schema
            admin.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        port, log = free_port(), tmp_path / "serve.log"
        with serving(tmp_path / "unused.db", port, "--database-url", url, log=log) as process:
            lines = wait_listening(process, log, port)
            assert any("database postgresql://postgres@127.0.0.1:5432/" in ln for ln in lines)
            event = make_event(event_id="s-1", timestamp=now.isoformat().replace("+00:00", "Z"))
            status, _, body = http("POST", f"http://127.0.0.1:{port}/v1/events", [event] * 2)
            assert (status, body) == (
                200,
                b'{"accepted":1,"duplicates":1,"rejected":[],"warnings":[]}',
            )
        found = rows(url, tmp_path, "SELECT event_id FROM events")
        assert found == [{"event_id": "s-1"}]
        assert not (tmp_path / "unused.db").exists()  # the SQLite path is not touched


@both
async def test_cli_rollup_hourly_with_database_url(
    start_app: Any, tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await start_app()
    await client.post("/v1/events", json=[
        make_event(timestamp="2026-11-28T07:15:00Z", org_id="org-a"),
        make_event(timestamp="2026-11-28T08:45:00Z", org_id="org-b"),
    ])  # fmt: skip
    where = (
        ["--database-url", database_url] if database_url else ["--db", str(tmp_path / "voxmon.db")]
    )
    code = await asyncio.to_thread(main, ["rollup", "hourly", "--from", "2026-11-28T07:00:00Z",
                                         "--to", "2026-11-28T09:00:00Z", *where])  # fmt: skip
    assert code == 0
    assert "hourly: 2 window(s)" in capsys.readouterr().out
    keys = rows(database_url, tmp_path, "SELECT period_start_ms, scope FROM snapshots"
                " ORDER BY period_start_ms, scope")  # fmt: skip
    hour = 3_600_000
    assert [(r["period_start_ms"] - D0, r["scope"]) for r in keys] == [
        (7 * hour, ""), (7 * hour, "org-a"), (8 * hour, ""), (8 * hour, "org-b"),
    ]  # fmt: skip


def test_check_config_reaches_the_server_or_says_why_in_one_line(tmp_path: Path) -> None:
    with fresh_database() as url:
        done = voxmon(tmp_path, "check-config", "--database-url", url, "--port", str(free_port()))
        assert (done.returncode, done.stderr) == (0, "")
        assert f"database {url}, auth off" in done.stdout
    gone = "postgresql://postgres@127.0.0.1:5432/voxmon_no_such_database"
    done = voxmon(tmp_path, "check-config", "--database-url", gone, "--port", str(free_port()))
    assert done.returncode == 2
    assert done.stderr.startswith(f"voxmon: database {gone}: cannot connect to PostgreSQL:")
    assert 'database "voxmon_no_such_database" does not exist' in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not list(tmp_path.iterdir())  # no SQLite file, no lock


def test_cli_cleanup_with_database_url_drops_expired_days(tmp_path: Path) -> None:
    with fresh_database() as url:
        store = PgStore(connect(url))
        old = datetime.now(UTC).timestamp() * 1000 - 10 * DAY_MS
        store.write(lambda s: s.events.insert(notes("c", int(old)), 0))
        store.close()
        done = voxmon(tmp_path, "cleanup", "--database-url", url)
        assert done.returncode == 0, done.stderr
        assert "cleanup deleted: events=1, artifacts=0" in done.stdout
        assert rows(url, tmp_path, "SELECT count(*) AS n FROM events") == [{"n": 0}]


async def test_a_connection_the_server_ended_is_replaced_on_its_next_use() -> None:
    """The rollup jobs' connection has no health probe: after the server ended its backend
    (a restart, pg_terminate_backend) the use that finds it gone fails, the next reconnects
    (every job failed until voxmon was restarted)."""
    with fresh_database() as url:
        db = await PgDatabase.open(url, "r1")
        try:
            pid = await db.run(lambda s: s.connection.info.backend_pid)
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(psycopg.OperationalError):
                await db.run(lambda s: s.connection.execute("SELECT 1"))
            again = await db.run(lambda s: s.connection.execute("SELECT 1").fetchone())
            assert again == (1,)
            assert await db.run(lambda s: s.connection.info.backend_pid) != pid
        finally:
            await db.close()


def test_a_writer_stalled_inside_its_transaction_releases_the_write_lock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replica paused mid-commit (SIGSTOP, a frozen VM) must not hold the write lock, and
    with it every replica's ingest, for as long as it stays paused."""
    monkeypatch.setattr(connection, "IDLE_IN_TRANSACTION_S", 1)
    with fresh_database() as url, closing(connect(url)) as stalled, closing(connect(url)) as other:
        stalled.execute("BEGIN")  # a commit's start: the write lock taken, then nothing
        stalled.execute("SELECT pg_advisory_xact_lock(%s)", (connection.WRITE_LOCK,))
        other.execute("SET lock_timeout = '30s'")  # without the timeout: LockNotAvailable
        with connection.transaction(other):
            row = other.execute("SELECT 1").fetchone()
        assert row == (1,)
        with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
            stalled.execute("SELECT 1")


OLD_LATEST_STARTS = (
    "SELECT w.n, MAX(e.ts_ms) FROM unnest(%s::text[], %s::text[], %s::bigint[])"
    " WITH ORDINALITY AS w (artifact_id, event_type, at_ms, n) JOIN events AS e"
    " ON e.artifact_id = w.artifact_id AND e.event_type = w.event_type"
    " AND e.ts_ms <= w.at_ms GROUP BY w.n"
)


def test_postgres_start_lookups_probe_the_index_even_on_days_never_analyzed(
    store: PgStore,
) -> None:
    """Derived durations look up each note's latest start with one index probe per lookup
    and day, also when the days' partitions were never analyzed (autovacuum off, or a new
    day before its first analyze): the join with ``MAX`` it replaced was then planned as a
    hash join over every stored event. The answers are each note's latest start at or
    before the time asked, across midnight, and none for a note without one."""
    midnight = D0 + DAY_MS
    events = [Event(f"s{n}-{k}", "transcription_started", midnight - 1_800_000 + 600 * n + k,
                    artifact_id=f"a{n}", stage="transcription")
              for n in range(6_000) for k in range(4)]  # fmt: skip
    store.write(lambda s: s.events.insert(events, 0))
    asked = [(f"a{n}", "transcription_started", midnight - 1_800_000 + 600 * n + 2)
             for n in range(0, 6_000, 30)]  # fmt: skip
    asked.append(("a-none", "transcription_started", midnight))
    args = [list(column) for column in zip(*asked, strict=True)]
    old = "\n".join(r[0] for r in store.connection.execute("EXPLAIN " + OLD_LATEST_STARTS, args))
    new = "\n".join(r[0] for r in store.connection.execute("EXPLAIN " + LATEST_STARTS, args))
    assert "Hash Join" in old and "Seq Scan on events_" in old  # the form it replaced
    assert "Seq Scan" not in new and "Hash" not in new, new
    scans = [line.split("->")[-1].strip() for line in new.splitlines() if "Scan" in line]
    assert scans[0].startswith("Function Scan on w"), new
    assert {scan.split(" on ")[1].split()[0] for scan in scans[1:]} >= {
        "events_20261128", "events_20261129"}, new  # fmt: skip
    assert all(scan.startswith("Index Only Scan Backward using events_") for scan in scans[1:])
    found = store.events.latest_starts(asked)
    assert found == {(a, t, at): at for a, t, at in asked[:-1]}


def _feed_plan(store: PgStore, monkeypatch: pytest.MonkeyPatch, filters: EventFilter) -> str:
    """The executed plan of the very statement ``recent`` runs for ``filters``."""
    run = PgEvents._dicts
    with monkeypatch.context() as patched:
        patched.setattr(PgEvents, "_dicts", lambda self, sql, args: run(
            self, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, args))  # fmt: skip
        return "\n".join(row["QUERY PLAN"] for row in store.events.recent(filters, None, 100))


def test_postgres_feed_by_type_walks_its_index_once_the_day_was_analyzed(
    store: PgStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events feed filtered by type or organisation needs its day partitions analyzed
    (docs/decisions/partition-statistics.md): never analyzed, a page reads every matching
    row and sorts them; analyzed once, after the day's first hour, it reads one page from an
    arrival index backwards however much the day then grows (with the same organisations
    and types: one new since is estimated at almost no rows, and read whole)."""
    types = ("transcription_started", "transcription_completed", "draft_generation_started")

    def day(first: int, count: int) -> list[Event]:
        return [Event(f"f{n}", types[n % 3], D0 + 360 * n, artifact_id=f"a{n // 3}",
                      org_id=f"org{n % 7}", stage="transcription")
                for n in range(first, first + count)]  # fmt: skip

    store.write(lambda s: s.events.insert(day(0, 10_000), D0 + 3_600_000))  # the first hour
    by_type, by_org = EventFilter(D0, event_type=types[0]), EventFilter(D0, org_id="org3")
    never = _feed_plan(store, monkeypatch, by_type)
    assert "Sort Key" in never and "Bitmap Heap Scan on events_20261128" in never, never
    assert "rows=3334 " in never  # every transcription_started of the hour, then sorted
    store.connection.execute("ANALYZE events")
    store.connection.commit()
    for first in range(10_000, 200_000, 10_000):  # the rest of the day, never analyzed again
        store.write(lambda s, f=first: s.events.insert(day(f, 10_000), D0 + 360 * f))
    for filters in (by_type, by_org):  # read backwards by arrival, stopped after the page
        plan = _feed_plan(store, monkeypatch, filters)
        assert "->  Sort" not in plan and "Bitmap" not in plan, plan
        assert "Index Scan Backward using events_20261128_" in plan, plan
        assert "on events_20261128 events_1 (actual rows=100 " in plan, plan
    found = store.events.recent(by_type, None, 3)
    assert [row["event_id"] for row in found] == ["f199998", "f199995", "f199992"]
