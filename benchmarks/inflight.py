"""Notes in flight: the daemon's memory and its start-up time with many notes in flight.

Fills a fresh SQLite database with N notes in flight (artifact rows, as ingest leaves them,
spread over six stages and the last 40 hours), then times ``voxmon serve`` from spawn to its
"listening" line and reads its ``VmRSS``; the same on an empty database gives the baseline.
Goal (issue 15): at most 100 MB more than the baseline with 1M notes in flight, and ready
within 2 s. Timings are printed, never asserted.

Run: ``.venv/bin/python benchmarks/inflight.py [--notes 1000000] [--quick] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.storage.sqlite.connection import connect  # noqa: E402

STAGES = ("transcription", "claims_extraction", "entity_resolution", "draft_generation",
          "confirmation", "ingestion")  # fmt: skip
INSERT = (
    "INSERT INTO artifacts (artifact_id, org_id, status, current_stage, last_event_type,"
    " last_event_ms, first_event_ms, awaiting_disambiguation) VALUES (?, ?, 'in_flight', ?,"
    " 'transcription_started', ?, ?, ?)"
)


def fill(db: Path, notes: int) -> None:
    conn = connect(db, synchronous="OFF")
    now_ms = int(time.time() * 1000)
    span = 40 * 3_600_000
    rows = (
        (f"note-{n:08d}", f"org-{n % 200:03d}", STAGES[n % len(STAGES)],
         now_ms - (n * 7919) % span, now_ms - span, int(n % 50 == 0))
        for n in range(notes)
    )  # fmt: skip
    conn.execute("BEGIN")
    conn.executemany(INSERT, rows)
    conn.execute("COMMIT")
    conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(db: Path) -> tuple[float, float]:
    """Seconds from spawn to "listening", and the daemon's RSS in MB once it listens."""
    command = [sys.executable, "-m", "exporter", "serve", "--db", str(db),
               "--port", str(free_port())]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=db.parent, stderr=subprocess.PIPE)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if b"listening on http://" in line:
                took = time.perf_counter() - started
                time.sleep(0.5)  # let start-up garbage settle
                return took, rss_mb(process.pid)
        raise SystemExit(f"serve never listened (exit {process.wait()})")
    finally:
        process.terminate()
        process.wait(timeout=60)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="10,000 notes (smoke run)")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    args = parser.parse_args()
    notes = 10_000 if args.quick else args.notes
    with tempfile.TemporaryDirectory(prefix="voxmon-inflight-") as tmp:
        empty, full = Path(tmp, "empty.db"), Path(tmp, "full.db")
        connect(empty).close()
        fill(full, notes)
        base_s, base_mb = serve(empty)
        full_s, full_mb = serve(full)
    result = {"notes": notes, "empty_ready_s": base_s, "empty_rss_mb": base_mb,
              "ready_s": full_s, "rss_mb": full_mb, "rss_added_mb": full_mb - base_mb}  # fmt: skip
    print(f"{'database':<28}{'ready s':>10}{'RSS MB':>10}")
    print(f"{'empty':<28}{base_s:>10.2f}{base_mb:>10.1f}")
    print(f"{f'{notes:,} notes in flight':<28}{full_s:>10.2f}{full_mb:>10.1f}")
    print(f"RSS added by the notes in flight: {full_mb - base_mb:.1f} MB (goal: at most 100 MB;"
          f" ready within 2 s)")  # fmt: skip
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
