"""Reads ahead of the caller: a helper thread fetches rows from a server-side cursor in
batches while the caller works on the ones before (the helper queues each batch as it
arrives, without waiting for the caller). psycopg waits for the server with the GIL
released, so the server's scan and the caller's work overlap on two cores. The org
breakdown merges its end-to-end digests this way (decisions/org-breakdown-reads.md), the
daily rollup decodes and merges its hourly rows scope by scope (``read_scope_runs``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import ServerCursor

from exporter.storage.base import TakeDigests, TakeParts
from exporter.storage.postgres.connection import Connection

Rows = list[tuple[Any, ...]]
BATCH = 16
"""Orgs per batch handed to the caller, which merges each batch while the next are read:
small batches leave little merging after the last arrives. The 90-day top-100 breakdown of
1,000 orgs took 51.3-52.6 ms (p50) against 55.8-56.7 with batches of 64, all 1,000 orgs
249-260 against 245-256 ms (three alternating rounds, docs/benchmarks.md)."""
ROWS_BATCH = 256
"""Snapshot rows per batch of ``read_scope_runs`` (a day's hourly rows of 200 orgs: 19)."""
SNAPSHOT_COLUMNS = (
    "period, period_start_ms, scope, artifacts_received, artifacts_completed,"
    " artifacts_failed, ai_cost_usd, parts, end_to_end"
)
# Reads of stored parts and digests ask for binary results (``binary=True``): bytea then
# arrives as its bytes, not as hex text for psycopg to decode (a day's 4,824 hourly rows,
# 10.7 MB of parts: 79 -> 46 ms). The columns load as the same Python types either way.
SCOPE_RUNS = (
    "SELECT period_start_ms, scope, parts FROM snapshots WHERE period = %s"
    " AND period_start_ms >= %s AND period_start_ms < %s ORDER BY scope, period_start_ms"
)
"""The range's parts rows scope after scope, each scope's in start order, straight from
``snapshots_by_scope`` (period, scope, start): the scan streams from the first row, where
a sort would hold every row back until it has read the last. Planned with sorts off (the
planner would sort when its statistics of the table are stale, as right after a day of
new rows: it believes the range holds one row)."""


def read_scope_runs(
    conn: Connection, period: str, start_ms: int, end_ms: int, take: TakeParts
) -> None:
    """``take`` each batch of the range's parts rows, read ahead (``read_ahead``) in
    scope order, each scope's rows together in start order: once a batch is taken, every
    scope but its last row's is whole, so the daily rollup merges those while the server
    sends the rest (decisions/snapshot-compression.md)."""
    with conn.cursor(name="voxmon_snapshot_rows") as cursor:
        found = conn.execute(
            "SELECT current_setting('enable_sort'), set_config('enable_sort', 'off', true)"
        ).fetchone()
        was = found[0] if found else "on"
        cursor.execute(SCOPE_RUNS, (period, start_ms, end_ms), binary=True)  # planned here
        # not in a ``finally``: a failed DECLARE aborts the transaction, which drops the
        # setting, and restoring it there would raise over the DECLARE's own error
        conn.execute("SELECT set_config('enable_sort', %s, true)", (was,))
        read_ahead(cursor, ROWS_BATCH, take)  # the rows are (start, scope, parts) tuples


def read_digests(
    conn: Connection, period: str, start_ms: int, end_ms: int, org_ids: Sequence[str],
    take: TakeDigests,
) -> None:  # fmt: skip
    """``take`` each batch of orgs' digest runs: per org, how many end-to-end digests it
    stored over the range and their bytes concatenated in start order (each is
    self-delimiting msgpack). One query, org by org in the order asked (an index scan of
    each one's range, so rows stream from the first org on and the cost follows the orgs
    asked for, not all the range's rows); orgs without a digest in the range are left
    out. The rows arrive as their bytes (binary results)."""
    with conn.cursor(name="voxmon_digests") as cursor:
        cursor.execute(
            "SELECT o.scope, d.n, d.runs FROM unnest(%s::text[]) AS o(scope) CROSS JOIN LATERAL"
            " (SELECT COUNT(*) AS n, string_agg(end_to_end, ''::bytea ORDER BY period_start_ms)"
            " AS runs FROM snapshots WHERE period = %s AND scope = o.scope"
            " AND period_start_ms >= %s AND period_start_ms < %s AND end_to_end IS NOT NULL) AS d"
            " WHERE d.n > 0",
            (sorted(org_ids), period, start_ms, end_ms),  # in index order
            binary=True,
        )
        read_ahead(cursor, BATCH, lambda rows: take(_runs(rows)))


def _runs(rows: Rows) -> dict[str, tuple[int, bytes]]:
    return {str(scope): (int(count), bytes(blob)) for scope, count, blob in rows}


def read_ahead(cursor: ServerCursor[Any], size: int, take: Callable[[Rows], None]) -> None:
    """``take`` each batch of up to ``size`` rows of the executed ``cursor``, in order, on
    the calling thread; a helper thread fetches every batch as soon as the server sends it
    (memory: at most the whole result, as one fetch would hold). Returns only once the
    helper has stopped (the connection is then the caller's alone again); raises the first
    error of either side, a fetch's included."""
    batches: queue.SimpleQueue[Rows | BaseException | None] = queue.SimpleQueue()
    stop = threading.Event()

    def fetch() -> None:
        try:
            while not stop.is_set():
                rows = cursor.fetchmany(size)
                batches.put(rows or None)
                if not rows:
                    return
        except BaseException as exc:  # handed to the caller, raised there
            batches.put(exc)

    helper = threading.Thread(target=fetch, name="voxmon-read-ahead", daemon=True)
    helper.start()
    try:
        while (batch := batches.get()) is not None:
            if isinstance(batch, BaseException):
                raise batch
            take(batch)
    finally:
        stop.set()  # after an error of ``take``: the fetch in progress ends, no other starts
        helper.join()
