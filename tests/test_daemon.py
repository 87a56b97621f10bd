"""``voxmon serve`` and ``check-config`` as real processes: one daemon per database, start-up
refusals of exactly one line with exit code 2, "listening" only once the port serves, and a
graceful stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from exporter.cli import main
from tests.tools import (
    DEADLINE_S,
    free_port,
    http,
    one_line,
    overwrite,
    post_one,
    refused_in_process,
    serving,
    sound_database,
    voxmon,
    wait_listening,
    wait_logged,
)


def test_daemon_second_serve_refuses_and_the_first_keeps_serving(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, port = tmp_path / "voxmon.db", free_port()
    with serving(db, port) as first:
        wait_listening(first, Path(f"{db}.log"), port)
        started = time.monotonic()
        second = voxmon(tmp_path, "serve", "--db", str(db), "--port", str(free_port()))
        took = time.monotonic() - started
        line = one_line(second)
        assert line.startswith(
            f"voxmon: database {db} is in use by another voxmon (pid {first.pid} on"
            f" {socket.gethostname()}, listening on 127.0.0.1:{port}, since 20"
        ), line
        assert line.endswith(
            "); stop that daemon first, or give this one its own database with --db"
        )
        assert post_one(port, "after-the-second", age_s=7200) == 200  # the first keeps serving
        other_port = str(free_port())
        assert refused_in_process(
            capsys, "check-config", "--db", str(db), "--port", other_port
        ) == (line)
        # The lock is the daemon's: the CLI's rollup and cleanup do not take it.
        at = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(time.time() - 7200))
        assert main(["rollup", "hourly", "--at", at, "--db", str(db)]) == 0
        assert main(["cleanup", "--dry-run", "--db", str(db)]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("hourly: 1 window(s)")
        assert out[1].startswith("cleanup would delete: events=0")
    print(f"second serve refused in {took:.2f} s")


def test_daemon_sigkilled_holder_does_not_block_a_restart(tmp_path: Path) -> None:
    db, port = tmp_path / "voxmon.db", free_port()
    with serving(db, port) as first:
        wait_listening(first, Path(f"{db}.log"), port)
        assert post_one(port, "before-the-kill") == 200
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=DEADLINE_S)
    assert json.loads((tmp_path / "voxmon.db.lock").read_text())["pid"] == first.pid  # stale
    with serving(db, port) as second:
        wait_listening(second, Path(f"{db}.log"), port)
        assert json.loads((tmp_path / "voxmon.db.lock").read_text())["pid"] == second.pid
        assert post_one(port, "after-the-restart") == 200


def test_daemon_listens_after_the_bind_and_drains_on_sigterm(tmp_path: Path) -> None:
    db, port = tmp_path / "voxmon.db", free_port()
    log = Path(f"{db}.log")
    with serving(db, port) as process:
        lines = wait_listening(process, log, port)
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S):
            pass  # accepted: the line was not logged before the socket served
        messages = [line.split(": ", 1)[-1] for line in lines]
        listening = messages.index(f"listening on http://127.0.0.1:{port}")
        assert messages.index(f"database {db} open, state restored") < listening
        early = messages[:listening]  # nothing claims to serve before the sockets do
        assert not any("ready" in m or "listening" in m for m in early), early
        assert post_one(port, "drained") == 200
        # the start-up catch-up logs its last job line on its own time: let it finish, so
        # the last two lines are the shutdown's
        wait_logged(process, log, "job=cleanup-events trigger=schedule")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE_S) == 0
    tail = [line.split(": ", 1)[-1] for line in log.read_text().splitlines()[-2:]]
    assert tail == ["shutting down: draining the ingest queue", "voxmon stopped"]
    assert (tmp_path / "voxmon.db.lock").read_text() == ""  # released on a clean stop


def _taken_port() -> tuple[socket.socket, int]:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken, taken.getsockname()[1]


def test_daemon_port_in_use_is_one_line_before_anything_is_ready(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken, port = _taken_port()
    with taken:
        line = one_line(voxmon(tmp_path, "serve", "--port", str(port)))
        assert line == (
            f"voxmon: cannot listen on 127.0.0.1:{port}: Address already in use; another"
            " process listens there (stop it, or set --port)"
        )
        db = str(tmp_path / "voxmon.db")
        assert refused_in_process(capsys, "check-config", "--db", db, "--port", str(port)) == line
    assert not (tmp_path / "voxmon.db").exists()  # refused before the database was opened


@pytest.mark.parametrize(
    ("db", "problem"),
    [
        ("missing/voxmon.db", "cannot open database {tmp}/missing/voxmon.db: directory"
         " {tmp}/missing does not exist"),
        ("adir", "cannot open database {tmp}/adir: it is a directory"),
        ("garbage.db", "database {tmp}/garbage.db is corrupt (file is not a database); restore"
         " it from a backup, or move it aside to start with an empty one"),
    ],
)  # fmt: skip
def test_daemon_unusable_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db: str, problem: str
) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "garbage.db").write_bytes(b"not a database, just some bytes" * 200)
    path, port = str(tmp_path / db), str(free_port())
    expected = "voxmon: " + problem.format(tmp=tmp_path)
    for command in ("serve", "check-config"):
        assert refused_in_process(capsys, command, "--db", path, "--port", port) == expected


def test_daemon_checks_the_whole_file_after_start_and_a_damaged_page_stops_ingest(
    tmp_path: Path,
) -> None:
    """Start-up does not read the whole file (a big database would hold it up); the check
    runs once serving: a sound file logs ok, a damaged page deep in a table logs one line
    naming the file and the page, and readiness and ingest answer 503 from then on
    (Retry-After 60: only an operator helps), nothing stored."""
    sound, damaged = tmp_path / "sound" / "voxmon.db", tmp_path / "damaged" / "voxmon.db"
    for db in (sound, damaged):
        db.parent.mkdir()
        pages = sound_database(db)
    overwrite(damaged, pages - 10, b"\xff" * 64)
    port = free_port()
    with serving(sound, port) as process:
        wait_logged(process, Path(f"{sound}.log"), f"integrity check of {sound}: ok (")
    with serving(damaged, port) as process:
        line = (f"database {damaged} is corrupt (quick_check: Page {pages - 10}: btreeInitPage()"
                " returns error code 11); restore it from a backup, or move it aside to start"
                " with an empty one")  # fmt: skip
        logged = wait_logged(process, Path(f"{damaged}.log"), line)
        wait_listening(process, Path(f"{damaged}.log"), port)  # a small file's check may end first
        errors = [x for x in logged if " ERROR " in x]
        assert len(errors) == 1 and errors[0].endswith(f"{line}; ingest answers 503 until then")
        status, _, body = http("GET", f"http://127.0.0.1:{port}/readyz")
        assert status == 503 and line in body.decode()
        status, headers, _ = http("POST", f"http://127.0.0.1:{port}/v1/events", [
            {"event_id": "e1", "event_type": "artifact_received", "timestamp": int(time.time()
             * 1000), "artifact_id": "n1"}])  # fmt: skip
        assert (status, headers["Retry-After"]) == (503, "60")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE_S) == 0
    with sqlite3.connect(damaged) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_daemon_impossible_cron_is_refused_by_serve_and_check_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "voxmon.toml"
    config.write_text('[schedule]\nrollup-daily = "0 0 31 2 *"\n')
    expected = (
        "voxmon: invalid configuration:\n"
        "  schedule.rollup-daily: invalid cron expression '0 0 31 2 *': it never fires"
        " (no such date)\n"
    )
    for command in ("serve", "check-config"):
        assert main(["--config", str(config), command, "--port", str(free_port())]) == 2
        assert capsys.readouterr().err == expected
    assert not (tmp_path / "voxmon.db").exists()
