"""``make demo`` / ``voxmon demo --serve`` as real processes: refused before anything starts
beside a daemon already on the database or port (nothing is sent to it), and stopped with the
daemon's code when its own daemon exits."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.tools import DEADLINE_S, free_port, http, post_one, serving, wait_listening

ROOT = Path(__file__).resolve().parent.parent


def accepted(port: int) -> float:
    """``voxmon_ingest_events_total{result="accepted"}`` of the daemon on ``port``."""
    _, _, body = http("GET", f"http://127.0.0.1:{port}/metrics")
    for line in body.decode().splitlines():
        if line.startswith('voxmon_ingest_events_total{result="accepted"}'):
            return float(line.split()[-1])
    return 0.0


def test_demodaemon_make_demo_beside_a_running_daemon_stops_with_its_error(
    tmp_path: Path,
) -> None:
    db, port = tmp_path / "voxmon.db", free_port()
    with serving(db, port) as running:
        wait_listening(running, Path(f"{db}.log"), port)
        env = {**os.environ, "VOXMON_DB_PATH": str(db), "VOXMON_PORT": str(port)}
        make = subprocess.run(
            ["make", "-s", "-C", str(ROOT), "-o", ".venv/.installed", "demo",
             f"BIN={Path(sys.executable).parent}", "DEMO_ARGS=--duration 5"],
            capture_output=True, text=True, env=env, timeout=DEADLINE_S, check=False,
        )  # fmt: skip
        assert make.returncode == 2, make.stderr
        assert make.stderr.splitlines()[0] == (
            f"voxmon: database {db} is in use by another voxmon (pid {running.pid} on"
            f" {os.uname().nodename}, listening on 127.0.0.1:{port}, since "
            + json.loads((tmp_path / "voxmon.db.lock").read_text())["since"]
            + "); stop that daemon first, or give this one its own database with --db"
        )
        assert f"voxmon: cannot listen on 127.0.0.1:{port}" in make.stderr.splitlines()[1]
        assert accepted(port) == 0.0  # the running daemon was not fed
        assert post_one(port, "still-serving") == 200


def _serving(port: int, lock: Path) -> int | None:
    """The daemon's pid once it holds the lock and answers /readyz."""
    try:
        holder = json.loads(lock.read_text() or "null")
        ready = http("GET", f"http://127.0.0.1:{port}/readyz")[0] == 200
        return int(holder["pid"]) if holder and ready else None
    except OSError:  # no lock file yet, or the port does not answer yet
        return None


def test_demodaemon_stops_when_its_daemon_exits(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VOXMON_PORT": str(port)}
    demo = subprocess.Popen(
        [sys.executable, "-m", "exporter", "demo", "--serve", "--rate", "20"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        deadline, pid = time.monotonic() + DEADLINE_S, None
        while pid is None and time.monotonic() < deadline:
            assert demo.poll() is None
            time.sleep(0.05)
            pid = _serving(port, tmp_path / "voxmon.db.lock")
        assert pid is not None, "the demo's daemon never became ready"
        os.kill(pid, signal.SIGKILL)
        _, stderr = demo.communicate(timeout=DEADLINE_S)
        assert demo.returncode == 1
        assert stderr.splitlines()[-1] == "demo: voxmon serve exited with code -9; the demo stopped"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()


def inflight(port: int) -> float:
    """Notes in flight (``voice_pipeline_inflight_artifacts``, summed over stages)."""
    _, _, body = http("GET", f"http://127.0.0.1:{port}/metrics")
    lines = body.decode().splitlines()
    return sum(float(n.split()[-1]) for n in lines if n.startswith("voice_pipeline_inflight_"))


def test_demodaemon_ctrl_c_of_make_demo_finishes_the_notes_and_exits_quietly(
    tmp_path: Path,
) -> None:
    """Ctrl-C in the terminal (SIGINT to make's whole process group): the demo finishes its
    notes in flight, its daemon (in a group of its own) takes them, and then stops
    cleanly; make prints no error and nothing is left in flight."""
    port = free_port()
    make = subprocess.Popen(
        ["make", "-s", "-C", str(ROOT), "-o", ".venv/.installed", "demo",
         f"BIN={Path(sys.executable).parent}",
         f"DEMO_ARGS=--rate 20 --port {port} --db {tmp_path / 'voxmon.db'}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + DEADLINE_S
        while _serving(port, tmp_path / "voxmon.db.lock") is None or inflight(port) < 10:
            assert make.poll() is None and time.monotonic() < deadline, make.stderr
            time.sleep(0.1)
        os.killpg(make.pid, signal.SIGINT)
        _, stderr = make.communicate(timeout=DEADLINE_S)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.communicate()
    assert "***" not in stderr and "Error" not in stderr, stderr  # make's "Error 130"
    assert "undelivered" not in stderr and "Traceback" not in stderr, stderr
    assert "abandoned=0, failed=0, pending=0" in stderr
    assert "demo: stopping; finishing the notes in flight (Ctrl-C again to quit)" in stderr
    assert "demo done: " in stderr
    assert (tmp_path / "voxmon.db.lock").read_text() == ""  # its daemon stopped cleanly
    with sqlite3.connect(tmp_path / "voxmon.db") as conn:
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM artifacts GROUP BY 1"))
    assert statuses.get("in_flight", 0) == 0 and statuses["completed"] > 10, statuses


def test_demodaemon_sigint_exits_0_after_the_drain(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "exporter", "demo", "--serve", "--rate", "20", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + DEADLINE_S
        while _serving(port, tmp_path / "voxmon.db.lock") is None or inflight(port) < 5:
            assert demo.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        demo.send_signal(signal.SIGINT)
        _, stderr = demo.communicate(timeout=DEADLINE_S)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    assert demo.returncode == 0, stderr
    assert stderr.splitlines()[-1].endswith("voxmon stopped")  # its daemon, after the drain
    with sqlite3.connect(tmp_path / "voxmon.db") as conn:
        (left,) = conn.execute("SELECT COUNT(*) FROM artifacts WHERE status = 'in_flight'")
    assert left == (0,)


def test_demodaemon_an_unreachable_voxmon_fails_at_once(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "exporter", "demo", "--port", str(port)],
        capture_output=True, text=True, timeout=DEADLINE_S, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"voxmon demo: cannot reach voxmon at http://127.0.0.1:{port}: Connection refused"
    ]
    print(f"dead URL reported after {time.monotonic() - started:.2f} s")
