"""An experiment of ``benchmarks/ingest.py``, not voxmon: its ingest path split over two
processes, to measure what the one lever left for single-event clients would give.

voxmon reads, validates and answers requests on its event loop and commits them on a
database thread of the same process, so their Python runs under one interpreter lock, one
after the other. Here the same work is split:

- The HTTP process reads each body and validates it with voxmon's own ``_parse``, queues
  the events, and sends every queued request's events to the writer in one message
  (msgpack), as soon as the writer has at most ``--in-flight`` - 1 messages to commit. No
  commit delay: while the writer commits, this process answers and reads the next posts.
- The writer process (forked at start) runs voxmon's own ``commit`` (dedup, derived
  durations, events, counters, window buckets, note states: one transaction, the daemon's
  schema and pragmas, synchronous=FULL) for each message, applies the tally to a live state
  as the daemon does, and sends back each request's result; a request is answered only then.

What it leaves out: the daemon's middlewares, metrics, health checks, auth, the read pool
and everything else that is not the ingest path; the check after each commit that the
database file is still the one opened (two ``stat`` calls); ``commit_max_events`` (every
queued request goes into one commit); parsing large bodies on a worker thread (all are
parsed on the event loop). A failure ends both processes. The answers carry voxmon's
counts (``accepted``, ``duplicates``; ``rejected`` and ``warnings`` as item indexes only)
and are always 200.

Run: ``python benchmarks/split_server.py PORT DB [--in-flight N]`` (127.0.0.1; SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter.http.ingest import _parse
from exporter.ingest.commit import CommitResult, commit
from exporter.live.state import LiveState
from exporter.live.windows import window_bounds
from exporter.model import Event
from exporter.settings import Settings
from exporter.storage.sqlite.connection import connect
from exporter.storage.sqlite.store import SqliteStore
from rollup.live_latency import LatencyWindows

_LENGTH = struct.Struct("<I")
_encode = msgspec.json.encode
_pack = msgspec.msgpack.Encoder().encode
_batches = msgspec.msgpack.Decoder(list[list[Event]]).decode
_results = msgspec.msgpack.Decoder(list[CommitResult]).decode


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# --- the writer process --------------------------------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def writer_main(sock: socket.socket, db: str, settings: Settings) -> None:
    """Commit each message's batches in one transaction; answer with their results."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    store = SqliteStore(connect(db))
    live = LiveState(settings.max_org_series, settings.max_live_orgs, LatencyWindows())
    pruned_before = 0
    try:
        while True:
            (size,) = _LENGTH.unpack(_recv_exact(sock, _LENGTH.size))
            batches: list[Sequence[Event]] = list(_batches(_recv_exact(sock, size)))
            at = now_ms()
            window_start = window_bounds(at).start_ms
            prune = window_start if window_start > pruned_before else None
            outcome = commit(store, batches, at, window_start, live.orgs, prune,
                             settings.max_duration_ms, None)  # fmt: skip
            pruned_before = max(pruned_before, window_start)
            if live.take(outcome.entry_id):
                live.apply(outcome.tally, at)
            reply = _pack(outcome.results)
            sock.sendall(_LENGTH.pack(len(reply)) + reply)
    except (EOFError, OSError):  # the HTTP process is gone: nothing more to answer
        pass
    finally:
        store.close()


# --- the HTTP process ----------------------------------------------------------------------


class Sender:
    """Queued requests' events, sent to the writer as one message per group commit."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 in_flight: int, writer_pid: int) -> None:  # fmt: skip
        self._reader, self._writer, self._writer_pid = reader, writer, writer_pid
        self._queued: list[tuple[list[Event], asyncio.Future[CommitResult]]] = []
        self._sent: asyncio.Queue[list[asyncio.Future[CommitResult]]] = asyncio.Queue()
        self._slots = asyncio.Semaphore(in_flight)
        self._wakeup = asyncio.Event()

    async def submit(self, events: list[Event]) -> CommitResult:
        future: asyncio.Future[CommitResult] = asyncio.get_running_loop().create_future()
        self._queued.append((events, future))
        self._wakeup.set()
        return await future

    async def send_loop(self) -> None:
        while True:
            await self._slots.acquire()
            while not self._queued:
                self._wakeup.clear()
                await self._wakeup.wait()
            jobs, self._queued = self._queued, []
            data = _pack([events for events, _ in jobs])
            self._writer.write(_LENGTH.pack(len(data)) + data)
            self._sent.put_nowait([future for _, future in jobs])

    async def answer_loop(self) -> None:
        """Each reply answers the oldest message sent. When the writer is gone (it ends
        on any failure), so is this process: nothing it did not answer was acknowledged,
        and the benchmark fails at once instead of waiting on requests nobody commits."""
        while True:
            try:
                (size,) = _LENGTH.unpack(await self._reader.readexactly(_LENGTH.size))
                results = _results(await self._reader.readexactly(size))
            except (OSError, asyncio.IncompleteReadError) as exc:
                print(f"split_server: the writer process is gone ({exc!r}); exiting",
                      file=sys.stderr, flush=True)  # fmt: skip
                with contextlib.suppress(ChildProcessError):  # reap it, if it has exited
                    os.waitpid(self._writer_pid, os.WNOHANG)
                os._exit(1)
            futures = self._sent.get_nowait()
            self._slots.release()
            for future, result in zip(futures, results, strict=True):
                if not future.done():
                    future.set_result(result)


SENDER = web.AppKey("sender", Sender)
SETTINGS = web.AppKey("settings", Settings)


async def post_events(request: web.Request) -> web.Response:
    body = await request.read()
    events, rejections, warnings = _parse(body, request.headers, request.app[SETTINGS], now_ms())
    result = await request.app[SENDER].submit(events) if events else CommitResult(0, 0)
    answer: dict[str, Any] = {"accepted": result.accepted, "duplicates": result.duplicates,
                              "rejected": [r.index for r in rejections],
                              "warnings": [w.index for w in warnings]}  # fmt: skip
    return web.Response(body=_encode(answer), content_type="application/json")


async def ready(_: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ready"}', content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("db")
    parser.add_argument("--in-flight", type=int, default=1)
    args = parser.parse_args()
    settings = Settings.load(None, {}, {"db_path": args.db})
    connect(args.db).close()  # the schema, before the writer forks
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        ours.close()
        writer_main(theirs, args.db, settings)
        os._exit(0)
    theirs.close()

    async def start(app: web.Application) -> Any:
        reader, writer = await asyncio.open_connection(sock=ours)
        app[SENDER] = sender = Sender(reader, writer, args.in_flight, pid)
        tasks = [asyncio.create_task(sender.send_loop()), asyncio.create_task(sender.answer_loop())]
        yield
        for task in tasks:
            task.cancel()
        writer.close()

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SETTINGS] = settings
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/readyz", ready)
    app.cleanup_ctx.append(start)
    try:
        web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)
    finally:
        ours.close()
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
