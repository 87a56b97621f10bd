"""Throwaway PostgreSQL databases for the benchmarks' ``--database-url`` runs, and what the
benchmarks read about the server processes serving them (CPU, lock waits).

The URL names a server and a database the script may connect to (``postgres`` will do); the
script connects there only to CREATE and DROP its own databases, ``voxmon_bench_<pid>_<figure>``,
each empty when created and dropped (``WITH (FORCE)``) when its figure is done or the run
ends. Nothing else on the server is touched.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import TupleRow


class Server:
    """A PostgreSQL server reached through ``url`` (its database is only the admin door)."""

    def __init__(self, url: str) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"--database-url must be postgresql://..., got {url!r}")
        self.url = url
        with self._admin() as conn:
            row = conn.execute("SHOW server_version").fetchone()
            self.version = str(row[0]) if row else "?"
            sync = conn.execute("SHOW synchronous_commit").fetchone()
            self.synchronous_commit = str(sync[0]) if sync else "?"

    def url_of(self, name: str) -> str:
        """The URL of database ``name`` on this server (its query string kept)."""
        return urlsplit(self.url)._replace(path=f"/{name}").geturl()

    @contextmanager
    def database(self, figure: str) -> Iterator[str]:
        """A new empty database of the benchmark's own (its connection string), dropped on
        exit even if the figure failed."""
        name = f"voxmon_bench_{os.getpid()}_{figure}"
        try:  # the CREATE too: an interrupt while it runs may leave the database created
            with self._admin() as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {name}")
            yield self.url_of(name)
        finally:
            with _signals_held():  # an interrupt now would cut the drop short
                self._drop(name)

    def _drop(self, name: str) -> None:
        """Drop ``name``; when the server cannot be reached, say so and leave the error in
        flight (if any) to be the one reported."""
        try:
            with self._admin() as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        except psycopg.Error as exc:
            print(f"could not drop the benchmark database {name} ({exc}); drop it by hand",
                  file=sys.stderr)  # fmt: skip

    def _admin(self) -> psycopg.Connection[TupleRow]:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM that arrive during the block take effect when it ends, with the
    handlers of before (only the main thread can set handlers; elsewhere it runs as is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    before = {number: signal.signal(number, lambda n, _: caught.append(n)) for number in held}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
        if caught:
            signal.raise_signal(caught[0])


def backend_cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each PostgreSQL backend process still alive (Linux
    ``/proc``; the server must run on this machine)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[pid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the backends alive at both readings spent between them."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def backend_pids(url: str) -> list[int]:
    """The server processes connected to the database at ``url`` now (but this lookup's)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(row[0]) for row in rows]


class LockWaits:
    """Samples, every ``interval_s`` on a connection of its own, how many connections to the
    database at ``url`` wait for a lock (voxmon's writers queue on its write lock); ``mean``
    is the average over the samples taken between enter and exit."""

    def __init__(self, url: str, interval_s: float = 0.02) -> None:
        self._url, self._interval_s = url, interval_s
        self._stop = threading.Event()
        self._samples: list[int] = []
        self._thread = threading.Thread(target=self._run, name="lock-waits", daemon=True)

    def __enter__(self) -> LockWaits:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return sum(self._samples) / max(len(self._samples), 1)

    def _run(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.wait(self._interval_s):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).fetchone()
                self._samples.append(int(row[0]) if row else 0)
