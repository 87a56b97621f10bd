"""``make demo`` / ``voxmon demo --serve`` as real processes: refused before anything starts
beside a daemon already on the database or port (nothing is sent to it), and stopped with the
daemon's code when its own daemon exits."""

from __future__ import annotations

import json
import os
import signal
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
