"""The benchmark scripts still run (tiny sizes; no timing is asserted), on SQLite and, with
``--database-url``, on PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE
from types import ModuleType

import psycopg
import pytest

from tests.backends import SERVER, require_postgres

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        ("ingest.py", ["--quick"], "batch 1: split / its round's raw, in run order"),
        ("rollup.py", ["--sizes", "2000", "--day-events", "2000"], "rollup-daily (1 day)"),
        ("queries.py", ["--orgs", "20", "--days", "5", "--requests", "20"], "orgs 5 d (top 100)"),
        ("client.py", ["--quick"], "end to end"),
        ("startup.py", ["--quick"], "second serve, same database: spawn -> exit 2"),
        ("orgs.py", ["--quick"], "ingest rate of new orgs"),
        ("hostile.py", ["--quick"], "/healthz p50:"),
        ("concurrency.py", ["--quick"], "goal (p99 < 50 ms while the rollup runs)"),
        ("latency_accuracy.py", ["--quick"], "shipped x1.15  91 + 107 bounds, 486 series"),
        ("inflight.py", ["--quick"], "restart with those 10,000 notes in flight"),
        ("commit.py", ["--events", "2000", "--rounds", "1"], "| no read model, no counters |"),
    ],
)
def test_benchmarks_run(script: str, args: list[str], expect: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert expect in result.stdout


def test_wal_pages_counts_each_commits_log_pages() -> None:
    """``wal_pages.py`` reads the pages from the log: every commit writes at least one page
    per B-tree it changes, so a raw insert of 4 events writes 8 pages at least (the table,
    its unique id and six indexes) and voxmon's commit, which also writes the notes' rows
    and the counters, more than raw."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "wal_pages.py"), "--commit", "4",
         "--events", "40"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    pages = {line.split()[0]: float(line.split()[1]) for line in result.stdout.splitlines()[2:]}
    assert pages.keys() == {"raw", "voxmon"}
    assert 8 <= pages["raw"] < pages["voxmon"]


@pytest.mark.parametrize(
    ("script", "args", "expect"),
    [
        ("ingest.py", ["--quick"], ["voxmon, 1 replica ", "voxmon, 2 replicas",
                                    "voxmon, 3 replicas", "raw COPY", "raw executemany"]),
        ("rollup.py", ["--sizes", "2000", "--day-events", "2000"],
         ["2,000 events       201", "4,824 hourly       201"]),
        ("queries.py", ["--orgs", "20", "--days", "5", "--requests", "20", "--json"],
         ["orgs 5 d (all 20)", '"orgs 5 d (all 20)": {"n": 2, "p50_ms": ']),
        ("commit.py", ["--events", "2000", "--rounds", "1", "--json"],
         ["PostgreSQL: 2,000 events in 1 commits", "| events only |", '"backend": "PostgreSQL"']),
    ],
)  # fmt: skip
def test_benchmarks_run_on_postgres(script: str, args: list[str], expect: list[str]) -> None:
    """``--database-url``: every figure printed, and the throwaway databases dropped."""
    require_postgres()
    command = [sys.executable, str(ROOT / "benchmarks" / script), *args,
               "--database-url", SERVER + "postgres"]  # fmt: skip
    with subprocess.Popen(command, stdout=PIPE, stderr=PIPE, text=True, cwd=ROOT) as proc:
        stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert [line for line in expect if line not in stdout] == []
    with psycopg.connect(SERVER + "postgres") as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"voxmon_bench_{proc.pid}_%",)
        ).fetchall()
    assert left == []


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ingest_reports_the_median_paired_round() -> None:
    """Single events are measured in paired rounds (voxmon, then raw on a fresh file): the
    round with the median ratio is reported whole, its raw rate beside its own HTTP run."""
    ingest = _script("ingest")
    rounds = [(f"load {n}", raw) for n, raw in enumerate((2_000.0, 2_500.0, 1_800.0))]
    assert ingest.median_round(rounds, [0.9, 0.7, 0.8]) == ("load 2", 1_800.0)
    assert ingest.median_round(rounds[:2], [0.9, 0.7]) == ("load 1", 2_500.0)  # lower middle
    assert ingest.median_round(rounds[:1], [0.5]) == ("load 0", 2_000.0)
    assert [s.rounds for s in ingest.FULL] == [3, 1, 1]


def test_ingest_load_generator_reads_each_answer(tmp_path: Path) -> None:
    """The benchmark's lean HTTP client posts every body once over keep-alive connections
    and reads each answer whole: the count it checks comes from the body it read."""
    ingest = _script("ingest")
    with ingest.Daemon(tmp_path, "", name="bare", bare=True) as bare:
        url = f"{bare.url}/v1/events"
        latencies = asyncio.run(ingest.post_all(url, [b"[{}]"] * 7, 1, 3))
        assert len(latencies) == 7
        assert asyncio.run(ingest.post_all(url, [b"[{},{}]"] * 2, 2, 1)) != []
        with pytest.raises(ingest.BenchError, match=r"expected 2 accepted, got b'.*accepted.:1,"):
            asyncio.run(ingest.post_all(url, [b"[{}]"], 2, 1))
        with pytest.raises(ingest.BenchError, match="HTTP 404"):
            asyncio.run(ingest.post_all(f"{bare.url}/nowhere", [b"[{}]"], 1, 1))


def test_split_server_exits_when_its_writer_dies(tmp_path: Path) -> None:
    """The experiment's HTTP process answers only what its writer committed: with the
    writer killed, it exits at once (status 1), and the load generator fails on the closed
    (or reset) connection, instead of hanging until its request timeout."""
    ingest = _script("ingest")
    ingest.REQUEST_TIMEOUT_S = 10.0  # a split server that hangs fails this in seconds
    db = tmp_path / "split.db"
    split = ingest.Daemon(tmp_path, db, name="split", split=1).__enter__()
    try:
        url = f"{split.url}/v1/events"
        asyncio.run(ingest.post_all(url, ingest.encode_batches(ingest.make_events(3, "w"), 1),
                                    1, 1))  # fmt: skip
        pid = split._proc.pid
        (writer,) = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        os.kill(int(writer), signal.SIGKILL)
        body = ingest.encode_batches(ingest.make_events(1, "x"), 1)
        gone = "closed the connection before answering|connection to .* failed"
        with pytest.raises(ingest.BenchError, match=gone):
            asyncio.run(ingest.post_all(url, body, 1, 1))
        assert split._proc.wait(timeout=10) == 1
        assert "the writer process is gone" in split.log_tail()
    finally:
        split.stop()
    ingest.verify_stored(db, 3, "split_server.py")


BURN = r"""
import subprocess, sys, threading, time
burn = "import time\nwhile time.process_time() < 0.3: pass\n"
def run(code, wait):
    child = subprocess.Popen([sys.executable, "-c", code])
    if wait:
        child.wait()
    else:
        time.sleep(60)  # the thread that started it lives on: the child stays its
nested = (burn + "import subprocess, sys\n"
          f"subprocess.Popen([sys.executable, '-c', {burn + 'time.sleep(60)'!r}])\n"
          "time.sleep(60)\n")
threading.Thread(target=run, args=(burn, True), daemon=True).start()
threading.Thread(target=run, args=(nested, False), daemon=True).start()
print("started", flush=True)
time.sleep(60)
"""


def test_benchmark_cpu_counts_children_started_by_threads_and_reaped(tmp_path: Path) -> None:
    """A server's CPU includes a child one of its threads started and waited for (0.3 s),
    a child another thread started and that still runs (0.3 s), and that child's own
    child (0.3 s): 0.9 s give or take a clock tick each, not the parent's own few ms."""
    ingest = _script("ingest")
    proc = subprocess.Popen([sys.executable, "-c", BURN], stdout=PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        deadline = time.monotonic() + 30
        while (cpu := ingest._tree_cpu_seconds(proc.pid)) < 0.85 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)  # nothing more burns: the total stays
        assert 0.85 <= ingest._tree_cpu_seconds(proc.pid) < 1.4, cpu  # and 3 interpreter starts
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the children too
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert ingest._tree_cpu_seconds(proc.pid) == 0.0  # gone: counted as nothing


async def _one_answer_server(answer: bytes) -> tuple[asyncio.Server, str]:
    """A server that reads one request head, then sends ``answer`` and closes the
    connection (b"": closes at once; b"wait": never answers)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            if answer == b"wait":
                await asyncio.sleep(30)  # cancelled when the test's loop ends
            writer.write(answer)
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1/events"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"", "closed the connection before answering \\(0 bytes of an answer read\\)"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{", "closed the connection before"),
        (b"wait", "no answer within 0.3 s"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "without Content-Length"),
    ],
)
def test_ingest_load_generator_names_what_went_wrong(
    answer: bytes, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that closes the connection, sends part of an answer, never answers, or
    answers chunked: each fails the run with what happened."""
    ingest = _script("ingest")
    monkeypatch.setattr(ingest, "REQUEST_TIMEOUT_S", 0.3)

    async def post() -> None:
        server, url = await _one_answer_server(answer)
        async with server:
            await ingest.post_all(url, [b"[{}]"], 1, 1)

    with pytest.raises(ingest.BenchError, match=message):
        asyncio.run(post())


def _goals() -> ModuleType:
    return _script("goals")


def test_benchmarks_commit_variants_leave_out_what_they_name(tmp_path: Path) -> None:
    """``benchmarks/commit.py``'s variants run the daemon's commit and leave out exactly the
    part each names: every event is stored in each; the read model, the counters and the
    derived durations only where they are kept; and nothing a variant leaves out stays out
    of the next (run from most left out to none, then back)."""
    bench = _script("commit")
    commits = bench.make_commits(1_000, 500)
    backend = bench.Sqlite(tmp_path, keep=True)
    names = ["events only", "no read model, no counters", "no read model", "voxmon"]
    stored = {}
    for name in [*names, *reversed(names)]:
        bench.run_voxmon(backend, commits, bench.VARIANTS[name])
        with sqlite3.connect(tmp_path / f"{backend.files}.db") as conn:
            found = tuple(conn.execute(query).fetchone()[0] for query in (
                "SELECT COUNT(*) FROM events",
                "SELECT COUNT(*) FROM artifacts",
                "SELECT COUNT(*) FROM live_counters",
                "SELECT COUNT(*) FROM events WHERE duration_source = 'received_event'",
            ))  # fmt: skip
        assert stored.setdefault(name, found) == found, name
    notes = len({e.artifact_id for requests in commits for r in requests for e in r})
    full = stored["voxmon"]
    assert full[:2] == (1_000, notes) and full[2] > 0 and full[3] > 0
    assert stored["no read model"] == (1_000, 0, full[2], full[3])
    assert stored["no read model, no counters"] == (1_000, 0, 0, full[3])
    assert stored["events only"] == (1_000, 0, 0, 0)


def test_benchmarks_commit_refuses_bad_arguments_in_one_line(tmp_path: Path) -> None:
    """Sizes that make no commit and a server that cannot be reached end the run with one
    line saying why (exit 2 and 1), no traceback, and no temporary files left."""
    script = str(ROOT / "benchmarks" / "commit.py")
    for args, code, line in (
        (["--commit", "3"], 2, "--commit must be even and >= 2 (two requests)"),
        (["--events", "10", "--commit", "20"], 2, "--events must be >= --commit"),
        (["--rounds", "0"], 2, "--rounds must be >= 1"),
        (["--database-url", "postgresql://root@127.0.0.1:1/postgres"], 1,
         "commit benchmark failed: OperationalError: connection failed"),
        (["--database-url", "mysql://root@127.0.0.1/x"], 1,
         "commit benchmark failed: ValueError: --database-url must be postgresql://"),
    ):  # fmt: skip
        result = subprocess.run([sys.executable, script, *args], capture_output=True,
                                text=True, timeout=60, cwd=ROOT,
                                env={**os.environ, "TMPDIR": str(tmp_path)})  # fmt: skip
        assert (result.returncode, result.stdout) == (code, ""), args
        assert line in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert list(tmp_path.iterdir()) == [], args


def test_benchmarks_commit_sigterm_drops_its_databases() -> None:
    """SIGTERM mid-run, on PostgreSQL: exit 143 and no throwaway database left."""
    require_postgres()
    command = [sys.executable, str(ROOT / "benchmarks" / "commit.py"), "--events", "20000",
               "--database-url", SERVER + "postgres"]  # fmt: skip
    with (
        psycopg.connect(SERVER + "postgres", autocommit=True) as conn,
        subprocess.Popen(command, stdout=PIPE, stderr=PIPE, text=True, cwd=ROOT) as proc,
    ):
        pattern = f"voxmon_bench_{proc.pid}_%"
        query = "SELECT datname FROM pg_database WHERE datname LIKE %s"
        for _ in range(600):  # the first database appears once the events are made
            if conn.execute(query, (pattern,)).fetchall() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert conn.execute(query, (pattern,)).fetchall() != []
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 143
        assert conn.execute(query, (pattern,)).fetchall() == []


def test_benchmarks_goals_judge_each_figure(capsys: pytest.CaptureFixture[str]) -> None:
    """``make bench``'s last table: each figure beside its goal; a missing figure (a failed
    script) is "not measured", never met."""
    goals = _goals()
    ingest = {"results": [
        {"batch": 1000, "clients": 4, "ratio": 0.85, "http_events_per_s": 27_500.0},
        {"batch": 1, "clients": 16, "ratio": 0.8, "http_events_per_s": 3_000.0},
    ]}  # fmt: skip
    pg = {"rounds": {"voxmon, 1 replica": [{"events_per_s": 8_000.0}, {"events_per_s": 9_000.0}],
                     "raw COPY": [{"events_per_s": 10_000.0}]}}  # fmt: skip
    inflight = {"empty_rss_mb": 47.0, "live_rss_mb": 54.5, "restart_rss_mb": 147.5,
                "restart_ready_s": 0.6}  # fmt: skip
    rollup = {"hourly_1000000": {"median_s": 2.01}, "daily": {"median_s": 0.1}}
    judged = [
        *goals.ingest_goals(ingest, "SQLite"),
        *goals.postgres_ingest_goals(pg),
        *goals.rollup_goals(rollup, "SQLite"),
        *goals.query_goals(None, "SQLite"),
        *goals.inflight_goals(inflight),
    ]
    assert [(g.shown, g.met) for g in judged] == [
        ("0.85 x", True), ("27,500 ev/s", False), ("0.80 x", True),
        ("0.90 x", True), ("9,000 ev/s", False),
        ("2.01 s", False), ("100 ms", True),
        ("not measured", None), ("not measured", None), ("not measured", None),
        ("7.5 MB", True), ("100.5 MB", False), ("0.60 s", True),
    ]  # fmt: skip
    goals.print_table(judged[:2], quick=False)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in lines[3:5]] == ["met", "MET"]
    assert lines[-1] == "1 of 2 goals met"


def test_benchmarks_goals_print_the_commit_ceilings(capsys: pytest.CaptureFixture[str]) -> None:
    """After the goals: the commit alone / raw, whole and less each part, beside the HTTP
    ratio, the HTTP rate over the commit alone's and both raw rates; missing figures say
    so."""
    goals = _goals()
    variants = {
        "raw": {"ratio": 1.0, "events_per_s": 22_000.0},
        "voxmon": {"ratio": 0.72, "events_per_s": 18_000.0},
        "no read model": {"ratio": 0.84},
        "no read model, no counters": {"ratio": 1.03},
        "events only": {"ratio": 1.01},
    }
    found = [{"backend": "SQLite", "variants": variants},
             {"backend": "PostgreSQL", "variants": {"voxmon": {"ratio": 0.45}}}]  # fmt: skip
    http = [
        goals.at_least("SQLite ingest, batch 1000 / raw", 0.6, 0.8, " x", ".2f"),
        goals.at_least("SQLite ingest, batch 1000", 14_400, 28_000, " ev/s", ",.0f"),
    ]
    goals.print_ceilings(found, http)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-3].replace(" x", "").split() == [
        "SQLite", "0.72", "0.84", "1.03", "1.01", "0.60", "0.80"
    ]  # fmt: skip
    assert lines[-2].split()[:3] == ["PostgreSQL", "0.45", "x"]
    assert lines[-2].count("not measured") == 5
    assert lines[-1] == (
        "raw inserts, rows/s: SQLite 22,000 (commit.py) / 24,000 (ingest);"
        " PostgreSQL not measured (commit.py) / not measured (ingest)"
    )


def test_benchmarks_goals_print_the_split_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    """Last: the two-process experiment beside voxmon, each over the raw rate of its own
    paired round; nothing when the ingest benchmark failed."""
    goals = _goals()
    goals.print_split(None)
    assert capsys.readouterr().out == ""
    goals.print_split({"results": [
        {"batch": 1, "clients": 16, "ratio": 0.6, "split_ratio": 0.95},
        {"batch": 1000, "clients": 4, "ratio": 0.71, "split_ratio": 0.62},
    ]})  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].split() == ["1", "16", "0.60", "x", "0.95", "x"]
    assert lines[-1].split() == ["1000", "4", "0.71", "x", "0.62", "x"]


def test_benchmarks_database_is_dropped_when_a_signal_arrives_while_dropping() -> None:
    """A SIGTERM that lands while a throwaway database is being dropped takes effect once
    the drop is done: the run still ends by it, and the database is gone."""
    require_postgres()
    from benchmarks.databases import Server

    class Interrupted(Server):
        def _drop(self, name: str) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            super()._drop(name)

    def stop(number: int, frame: object) -> None:
        raise SystemExit(128 + number)

    server = Interrupted(SERVER + "postgres")
    before = signal.signal(signal.SIGTERM, stop)
    try:
        with pytest.raises(SystemExit) as stopped, server.database("held"):
            pass
    finally:
        signal.signal(signal.SIGTERM, before)
    assert stopped.value.code == 143
    with psycopg.connect(SERVER + "postgres") as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname = %s",
            (f"voxmon_bench_{os.getpid()}_held",),
        ).fetchall()
    assert left == []
