"""Which replica runs the scheduled jobs, and one live replica per instance id: both by
PostgreSQL session advisory locks held on one connection of their own. A replica that dies
loses its session, so its locks go with it; another replica takes the job lock on its next
try (docs/decisions/leader-lock.md)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress

import psycopg

from exporter.errors import StartupError
from exporter.storage.postgres.connection import Connection

log = logging.getLogger(__name__)

LEADER_LOCK = 0x766F786D6C64
"""The job lock: its holder is the leader."""
INSTANCE_CLASS = 0x766F786D
"""First key of the two-key advisory lock ``(INSTANCE_CLASS, hashtext(instance_id))``."""


class PgLeadership:
    """``hold()`` keeps or tries to take the job lock; ``leading`` says the last answer."""

    def __init__(self, url: str, instance: str) -> None:
        self._url, self._instance = url, instance
        self._conn: Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxmon-leader")
        self.leading = False

    @classmethod
    async def open(cls, url: str, instance: str) -> PgLeadership:
        """Connect and claim ``instance``; ``StartupError`` when a live replica has it."""
        leadership = cls(url, instance)
        try:
            await leadership._run(leadership._connect)
        except BaseException:
            await leadership.close()
            raise
        return leadership

    async def hold(self) -> bool:
        """True while this replica holds the job lock (taking it when it is free)."""
        return await self._run(self._hold)

    async def close(self) -> None:
        await self._run(self._disconnect)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: object) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn)  # type: ignore[arg-type]

    def _connect(self) -> bool:
        conn = psycopg.connect(
            self._url, autocommit=True, application_name=f"voxmon-leader {self._instance}"
        )
        row = conn.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (INSTANCE_CLASS, self._instance)
        ).fetchone()
        if not (row and row[0]):
            conn.close()
            raise StartupError(
                f"instance_id {self._instance!r} is in use by another live voxmon replica on"
                " this database; give each replica its own instance_id (--instance-id)"
            )
        self._conn = conn
        return True

    def _hold(self) -> bool:
        try:
            if self._conn is None or self._conn.closed:
                self.leading = False
                self._connect()
            assert self._conn is not None
            if self.leading:  # a live session still holds its session locks
                self._conn.execute("SELECT 1")
            else:
                row = self._conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)
                ).fetchone()
                self.leading = bool(row and row[0])
        except (psycopg.Error, StartupError) as exc:
            if self.leading or self._conn is not None:
                log.warning("job lock connection lost: %s", exc)
            self._disconnect()
        return self.leading

    def _disconnect(self) -> bool:
        self.leading = False
        if self._conn is not None:
            with suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
        return True
