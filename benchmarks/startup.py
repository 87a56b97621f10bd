"""Start-up benchmark: how long ``voxmon serve`` takes to refuse (a database held by another
daemon, a taken port, a corrupt file) and to start listening on a fresh database, each from
spawning the process (interpreter start and imports included) to its exit or its
"listening" line.

Goal (issue 9): a second ``serve`` on the same database exits 2 within a second. Timings are
printed, never asserted; the exit status is non-zero only when a case does not end as it
should (a refusal that is not exit 2, a daemon that never listens).

Run: ``.venv/bin/python benchmarks/startup.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60.0
FIRST = "first serve: spawn -> listening (fresh db)"
HELD = "second serve, same database: spawn -> exit 2"
TAKEN = "serve on a taken port: spawn -> exit 2"
CORRUPT = "serve on a corrupt file: spawn -> exit 2"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXMON_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(workdir: Path, db: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "exporter", "serve", "--db", str(db), "--port", str(port)]
    return subprocess.Popen(
        command, cwd=workdir, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def refusal_seconds(workdir: Path, db: Path, port: int) -> float:
    """Spawn-to-exit time of a ``serve`` that must refuse with exit code 2."""
    started = time.monotonic()
    process = _serve(workdir, db, port)
    _, stderr = process.communicate(timeout=TIMEOUT_S)
    took = time.monotonic() - started
    if process.returncode != 2 or len(stderr.splitlines()) != 1:
        raise SystemExit(f"expected one line and exit 2, got {process.returncode}: {stderr!r}")
    return took


def listening_seconds(workdir: Path, db: Path, port: int) -> tuple[float, subprocess.Popen[bytes]]:
    """Spawn-to-"listening" time of a ``serve``; the caller stops the daemon."""
    started = time.monotonic()
    process = _serve(workdir, db, port)
    assert process.stderr is not None
    for line in process.stderr:
        if b"listening on http://" in line:
            return time.monotonic() - started, process
    raise SystemExit(f"serve never listened (exit {process.wait()})")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.communicate(timeout=TIMEOUT_S)


def measure(runs: int, case: Callable[[], float]) -> tuple[float, float]:
    times = [case() for _ in range(runs)]
    return statistics.median(times), max(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the goal's case once (smoke test)")
    quick = parser.parse_args(argv).quick
    runs = 1 if quick else 7
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {runs} run(s) per case")
    rows: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db, port = work / "voxmon.db", _free_port()
        took, first = listening_seconds(work, db, port)
        rows[FIRST] = (took, took)
        try:
            rows[HELD] = measure(runs, lambda: refusal_seconds(work, db, _free_port()))
            if not quick:
                rows[TAKEN] = measure(runs, lambda: refusal_seconds(work, work / "o.db", port))
        finally:
            _stop(first)
        if not quick:
            rows[FIRST] = measure(runs, lambda: _listen_once(work, port))
            (work / "corrupt.db").write_bytes(b"not a database" * 500)
            rows[CORRUPT] = measure(runs, lambda: refusal_seconds(work, work / "corrupt.db", port))
    print(f"{'case':<48} {'median s':>9} {'max s':>7}")
    for case, (median, worst) in rows.items():
        print(f"{case:<48} {median:>9.3f} {worst:>7.3f}")
    held = rows[HELD][0]
    verdict = "met" if held < 1 else "NOT met"
    print(f"goal: second serve refused within 1 s (median {held:.3f} s): {verdict}")
    return 0


def _listen_once(work: Path, port: int) -> float:
    fresh = work / f"fresh-{time.monotonic_ns()}.db"
    took, process = listening_seconds(work, fresh, port)
    _stop(process)
    return took


if __name__ == "__main__":
    sys.exit(main())
