"""Storage health: whether a write can commit now and, if not, why. The ingest writer
reports classified commit failures; a probe (a tiny real write) finds out when storage works
again, so readiness and ingest recover without a restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

from exporter.clock import Clock
from exporter.errors import Unavailable
from exporter.selfmetrics import SelfMetrics
from exporter.storage import errors as storage
from exporter.storage.base import HealthChecks, Store, Writes
from exporter.timestamps import datetime_to_ms

log = logging.getLogger(__name__)

T = TypeVar("T")

UNHEALTHY_PROBE_S = 2
"""Seconds between probes while storage cannot commit (also the ``Retry-After``)."""
HEALTHY_PROBE_S = 10
"""Seconds between probes while it can, so a failing disk is noticed without traffic."""
REPLACED_RETRY_AFTER_S = 60
"""``Retry-After`` once the database file is gone or found corrupt: only an operator helps."""
_FINAL = frozenset({"replaced", "corrupt"})
"""Failures no probe clears: the file was replaced, or the integrity check found damage."""
CORRUPT_ADVICE = "restore it from a backup, or move it aside to start with an empty one"
_REOPEN = frozenset({"read_only", "io_error", "cannot_open"})
"""Failures after which a fresh connection may succeed where the old one cannot."""


class StorageHealth:
    """Healthy until a classified storage failure; healthy again after a probe commits.
    A removed or replaced database file, or damage found by the integrity check after
    start, is final: nothing is committed until a restart."""

    def __init__(
        self, db: Writes, checks: HealthChecks, clock: Clock, metrics: SelfMetrics
    ) -> None:
        self._db = db
        self._checks = checks
        self._clock = clock
        self._errors = metrics.storage_errors
        for kind in storage.KINDS:  # present from the start, so increase() sees the first
            self._errors.labels(kind)
        self.healthy = True
        self.kind = ""
        self.reason = ""
        self._since = 0.0
        self._failed = asyncio.Event()
        self.integrity_checked = asyncio.Event()
        """Set once the integrity check after start has ended, however it ended (and by
        the daemon's stop, in case it never ran)."""

    @classmethod
    async def start(
        cls, db: Writes, checks: HealthChecks, clock: Clock, metrics: SelfMetrics
    ) -> StorageHealth:
        """Create the heartbeat table, probe once."""
        await db.run(checks.prepare)
        health = cls(db, checks, clock, metrics)
        metrics.storage_healthy.set_function(lambda: float(health.healthy))
        await health.probe()
        return health

    def checked(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` (run on the database thread) followed by the file identity check: a
        commit into a database file or log no longer at its path raises ``FileReplaced``
        instead of being acknowledged (after moving what is committed into the database
        file, in case the log alone was removed)."""
        verify = self._checks.verify

        def run(store: Store, *args: object) -> T:
            result = fn(store, *args)
            verify(store)
            return result

        return run

    @staticmethod
    def classify(exc: BaseException) -> str | None:
        """The storage failure kind of ``exc`` (None: not a storage failure)."""
        return storage.classify(exc)

    def record(self, exc: BaseException, default: str | None = None) -> str | None:
        """Count a failure and mark storage unhealthy if ``exc`` is a storage failure (or
        ``default`` is given); returns its kind, None for failures that are not storage's."""
        kind = storage.classify(exc) or default
        if kind is None:
            return None
        self._errors.labels(kind).inc()
        if self.kind in _FINAL:
            return kind
        if self.healthy:
            self._since = self._clock.monotonic()
            self._failed.set()  # the probe loop switches to the short interval now
            log.error("storage cannot commit (%s): %s; ingest answers 503 meanwhile", kind, exc,
                      exc_info=kind == "other")  # fmt: skip
        self.healthy, self.kind = False, kind
        self.reason = (
            f"{exc}; restart voxmon (no write is acknowledged until then)"
            if kind == "replaced"
            else f"storage cannot commit ({kind}): {exc}; retrying every {UNHEALTHY_PROBE_S} s"
        )
        return kind

    def refusal(self) -> Unavailable:
        """The 503 ingest answers while storage is unhealthy."""
        wait = REPLACED_RETRY_AFTER_S if self.kind in _FINAL else UNHEALTHY_PROBE_S
        return Unavailable(self.reason, wait)

    async def probe(self) -> bool:
        """One real write transaction (the heartbeat row); after a read-only or I/O
        failure, again on a fresh connection. Marks storage healthy when it commits."""
        if self.kind in _FINAL:
            return False
        now_ms = datetime_to_ms(self._clock.now())
        try:
            await self._db.run(self.checked(self._checks.beat), now_ms)
        except Exception as exc:
            if self.record(exc, "other") not in _REOPEN:
                return False
            try:
                await self._reopen()
                await self._db.run(self.checked(self._checks.beat), now_ms)
            except Exception as again:
                self.record(again, "other")
                return False
        self._recover()
        return True

    async def _reopen(self) -> None:
        await self._db.run(lambda _store: self._checks.before_reopen())
        await self._db.reopen()

    def _recover(self) -> None:
        if self.healthy or self.kind in _FINAL:  # found while the probe's write ran: stays
            return
        down = self._clock.monotonic() - self._since
        log.warning("storage recovered after %.1f s (%s); ingest resumes", down, self.kind)
        self.healthy, self.kind, self.reason = True, "", ""

    async def check_integrity(self, where: str) -> None:
        """The full integrity check, once, after start (it reads the whole file, so it does
        not hold up start-up). Damage is final: logged once, readiness and ingest 503."""
        try:
            await self._check_integrity(where)
        finally:
            self.integrity_checked.set()

    async def _check_integrity(self, where: str) -> None:
        started = self._clock.monotonic()
        try:
            problem = await asyncio.to_thread(self._checks.integrity)
        except Exception as exc:  # the file is unreadable as a database: damage too
            if storage.classify(exc) != "corrupt":
                log.warning("integrity check of %s failed: %s", where, exc)
                return
            problem = str(exc)
        if problem is None:
            return  # stopped by shutdown, or nothing to check (PostgreSQL)
        took = self._clock.monotonic() - started
        if not problem:
            log.info("integrity check of %s: ok (%.1f s)", where, took)
            return
        self._errors.labels("corrupt").inc()
        self.healthy, self.kind = False, "corrupt"
        self.reason = f"database {where} is corrupt (quick_check: {problem}); {CORRUPT_ADVICE}"
        log.error("%s; ingest answers 503 until then", self.reason)

    async def run(self) -> None:
        """Probe forever: every ``HEALTHY_PROBE_S`` while healthy, and from the moment a
        failure is recorded every ``UNHEALTHY_PROBE_S`` until one commits."""
        while True:
            if self.healthy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._failed.wait(), HEALTHY_PROBE_S)
            if not self.healthy:
                await asyncio.sleep(UNHEALTHY_PROBE_S)
            self._failed.clear()
            await self.probe()
