"""Pages a SQLite commit writes: the write-ahead log's frames per commit, and the commit's
time and CPU, for raw inserts of the rows (``SqliteEvents.insert``, as the ingest
benchmarks' raw rates) and for voxmon's whole ingest commit (``exporter.ingest.commit``),
on the events of ``benchmarks/ingest.py`` in commits of ``--commit`` events (one request
each). Every page a transaction changes is written whole to the log at COMMIT, so the
frames count what a commit costs beyond its rows: the events' eight B-trees (the table,
the unique id and six indexes, most at random or per-organisation positions) and, for
voxmon, the notes' read model, the counters and the in-flight table.

The first half of the commits fills the file untimed; the log is then checkpointed and
truncated, and automatic checkpoints are off, so its size after the second half counts
that half's frames exactly. Daemon schema and pragmas otherwise (``connect``:
synchronous=FULL, WAL). Files are removed afterwards.

Run: ``.venv/bin/python benchmarks/wal_pages.py [--commit 16] [--events 16000]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest import encode_batches, make_events, validated  # noqa: E402
from exporter.ingest.commit import commit  # noqa: E402
from exporter.live.orgs import OrgRegistry  # noqa: E402
from exporter.live.windows import window_bounds  # noqa: E402
from exporter.model import Event  # noqa: E402
from exporter.settings import Settings  # noqa: E402
from exporter.storage.sqlite.connection import connect  # noqa: E402
from exporter.storage.sqlite.store import SqliteStore  # noqa: E402

WAL_HEADER, FRAME_HEADER, PAGE = 32, 24, 4096


def measure(path: Path, batches: list[list[Event]], voxmon: bool) -> tuple[float, float, float]:
    """(log frames, ms, CPU ms) per commit over the second half of ``batches``."""
    settings = Settings()
    store = SqliteStore(connect(path))
    store.connection.execute("PRAGMA wal_autocheckpoint=0")
    orgs = OrgRegistry(settings.max_live_orgs, settings.max_org_series)
    now_ms = time.time_ns() // 1_000_000
    window = window_bounds(now_ms).start_ms
    half = len(batches) // 2
    try:
        for at, batch in enumerate(batches):
            if at == half:
                store.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                started, cpu = time.perf_counter(), time.process_time()
            if voxmon:
                commit(store, [batch], now_ms, window, orgs, None, settings.max_duration_ms, None)
            else:
                with store.transaction():
                    store.events.insert(batch, now_ms)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        frames = (Path(f"{path}-wal").stat().st_size - WAL_HEADER) / (FRAME_HEADER + PAGE)
    finally:
        store.close()
    commits = len(batches) - half
    return frames / commits, 1000 * elapsed / commits, 1000 * cpu / commits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commit", type=int, default=16, help="events per commit")
    parser.add_argument("--events", type=int, default=16_000)
    args = parser.parse_args()
    if args.commit < 1 or args.events < 2 * args.commit:
        parser.error("--commit must be >= 1 and --events at least two commits")
    batches = validated(encode_batches(make_events(args.events, "wal-pages"), args.commit))
    print(f"{args.events:,} events in commits of {args.commit}; second half measured")
    print(f"{'commit':<8}{'log pages/commit':>18}{'pages/event':>13}{'ms/commit':>11}"
          f"{'CPU ms/commit':>15}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="voxmon-wal-") as tmp:
        for name, voxmon in (("raw", False), ("voxmon", True)):
            frames, ms, cpu = measure(Path(tmp) / f"{name}.db", batches, voxmon)
            print(f"{name:<8}{frames:>18.1f}{frames / args.commit:>13.2f}{ms:>11.2f}{cpu:>15.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
