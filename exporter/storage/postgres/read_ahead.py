"""Reads ahead of the caller: a helper thread fetches rows from a server-side cursor in
batches while the caller works on the ones before (the helper queues each batch as it
arrives, without waiting for the caller). psycopg waits for the server with the GIL
released, so the server's scan and the caller's work overlap on two cores. The org
breakdown merges its end-to-end digests this way (decisions/org-breakdown-reads.md), the
daily rollup decodes its hourly rows (``PgSnapshots.read_snapshot_rows``)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import ServerCursor

from exporter.storage.base import TakeDigests
from exporter.storage.postgres.connection import Connection

Rows = list[tuple[Any, ...]]
BATCH = 64
"""Orgs per batch handed to the caller (``rollup.merger`` merges 64 groups at a time)."""


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
