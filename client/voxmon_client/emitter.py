"""Client library for pipeline code: fire-and-forget event emitters (``Emitter`` on a thread,
``AsyncEmitter`` on asyncio) around one sans-I/O core that batches, retries and counts.

``emit()`` only appends to a bounded in-memory outbox, so it never blocks on the network and
never raises; a background sender posts batches to ``POST /v1/events``. Delivery is
at-least-once and the server deduplicates on ``event_id``, which stays the same across
retries, so every event is stored exactly once unless voxmon refuses it (``rejected``), the
outbox overflows (drop-oldest, ``dropped``), its retries run out (``failed``: retries are
bounded, see ``Courier``) or ``close()`` times out (``abandoned``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import http.client
import logging
import random
import threading
import urllib.parse
import uuid
from types import TracebackType
from typing import Any

import aiohttp

from exporter.catalog import EVENT_TYPES, STARTED_TYPE, Kind
from exporter.clock import Clock, SystemClock
from exporter.courier import INGEST_PATH, Backoff, Courier, Response, Send
from exporter.outbox import ClientStats, EventError, Fields, Outbox

__all__ = ["AsyncEmitter", "Backoff", "ClientStats", "Emitter", "EventError", "Stage"]

log = logging.getLogger(__name__)


class Stage:
    """``with emitter.stage(artifact_id, "transcription") as s:`` emits the stage's started
    event, then on exit its success event (``s.success_type`` picks another success type of
    the stage, e.g. ``entity_needs_disambiguation``) or, if the block raised, its failure
    event with ``error_code`` = the exception's type name; the exception propagates. The
    finishing event carries ``duration_ms`` (monotonic clock) and ``s.metadata`` (seeded by
    a ``metadata=`` argument); other fields given to ``stage()`` go on all events. An
    unknown stage is logged and the block runs uninstrumented: it never breaks the caller."""

    def __init__(self, emitter: _Base, artifact_id: str, stage: str, fields: Fields) -> None:
        self.metadata: dict[str, Any] = dict(fields.pop("metadata", None) or {})
        self._emitter, self._start = emitter, 0.0
        self._fields = {"artifact_id": artifact_id, **fields}
        types = [t for t in EVENT_TYPES.values() if t.stage == stage]
        self._started = STARTED_TYPE.get(stage)
        self.success_type = next((t.name for t in types if t.kind is Kind.SUCCESS), "")
        self._failure = next((t.name for t in types if t.kind is Kind.FAILURE), "")
        if self._started is None:
            log.error("voxmon: %r is not a processing stage; stage() will emit nothing", stage)

    def __enter__(self) -> Stage:
        self._start = self._emitter.clock.monotonic()
        if self._started:
            self._emitter.emit(self._started, **self._fields)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._started:
            return
        duration_ms = (self._emitter.clock.monotonic() - self._start) * 1000
        fields: Fields = {**self._fields, "duration_ms": duration_ms}
        if self.metadata:
            fields["metadata"] = self.metadata
        if exc_type is None:
            self._emitter.emit(self.success_type, **fields)
        else:
            message = str(exc)[:2000]
            error = (
                {"error_code": exc_type.__name__[:64], "error_message": message} if message else {}
            )
            self._emitter.emit(
                self._failure, **{**fields, "error_code": exc_type.__name__[:64], **error}
            )


class _Base:
    """What both emitters share: the outbox, the courier, ``emit`` and ``stage``."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        capacity: int = 10_000,
        batch_size: int = 500,
        interval_s: float = 1.0,
        timeout_s: float = 10.0,
        backoff: Backoff | None = None,
        max_attempts: int = 5,
        retry_budget_s: float = 120.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.outbox = Outbox(capacity, batch_size)
        self.courier = Courier(
            self.outbox, self.clock, backoff or Backoff(), interval_s, rng or random.Random(),
            max_attempts=max_attempts, budget_s=retry_budget_s,
        )  # fmt: skip
        self.url = url.rstrip("/") + INGEST_PATH
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout_s = timeout_s

    def emit(self, event_type: str, **fields: Any) -> str:
        """Queue one event and return its ``event_id``; never blocks, never raises.
        ``event_id`` (uuid4) and ``timestamp`` (now, UTC) are filled in unless given."""
        try:
            event_id = fields.get("event_id")
            if event_id is None:
                event_id = fields["event_id"] = str(uuid.uuid4())
            fields["event_type"] = event_type
            if fields.get("timestamp") is None:
                fields["timestamp"] = self.clock.now()
            if self.outbox.put(fields):
                self._wake()
            return str(event_id)
        except Exception:
            log.exception("voxmon: emit(%r) failed", event_type)
            return ""

    def stage(self, artifact_id: str, stage: str, **fields: Any) -> Stage:
        """Time one stage of one artifact (see ``Stage``); extra fields go on every event."""
        return Stage(self, artifact_id, stage, fields)

    def stats(self) -> ClientStats:
        return self.outbox.stats()

    @property
    def dropped(self) -> int:
        """Events dropped because the outbox was full (oldest first) or closed."""
        return self.outbox.counts["dropped"]

    def _flush_target(self) -> int:
        with self.outbox.lock:
            target = self.outbox.counts["emitted"]
        self.courier.flush_target = max(self.courier.flush_target, target)
        return target

    def _wake(self) -> None:
        raise NotImplementedError


class Emitter(_Base):
    """Thread-based emitter for synchronous code (stdlib ``http.client``, keep-alive).
    ``close()`` it when done; at interpreter exit it flushes for ``exit_timeout_s``."""

    def __init__(self, url: str, *, exit_timeout_s: float = 2.0, **options: Any) -> None:
        super().__init__(url, **options)
        self._transport = _HttpTransport(self.url, self.headers, self.timeout_s)
        self._wakeup = threading.Event()
        self._progress = threading.Condition()
        self._exit_timeout = exit_timeout_s
        self._thread = threading.Thread(target=self._run, name="voxmon-emitter", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event emitted before the call is resolved; False on timeout."""
        target = self._flush_target()
        self._wakeup.set()
        with self._progress:
            return self._progress.wait_for(lambda: self.outbox.resolved >= target, timeout)

    def close(self, timeout: float = 10.0) -> ClientStats:
        """Flush for up to ``timeout`` seconds, then stop; what is left counts as abandoned."""
        atexit.unregister(self._at_exit)
        self.outbox.closed = True
        if self.courier.close_at is None:
            self.courier.close_at = self.clock.monotonic() + timeout
        self._wakeup.set()
        self._thread.join(timeout + self.timeout_s)
        return self.stats()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake(self) -> None:
        self._wakeup.set()

    def _at_exit(self) -> None:
        self.close(self._exit_timeout)

    def _run(self) -> None:
        while True:
            step = self.courier.next()
            if isinstance(step, Send):
                self.courier.done(self._transport.post(step.body))
                with self._progress:
                    self._progress.notify_all()
            elif step is None:
                self._transport.close()
                with self._progress:
                    self._progress.notify_all()
                return
            elif self._wakeup.wait(step):
                self._wakeup.clear()


_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class _HttpTransport:
    """One keep-alive ``http.client`` connection, reopened after any error."""

    def __init__(self, url: str, headers: dict[str, str], timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        https = parts.scheme == "https"
        self._factory = http.client.HTTPSConnection if https else http.client.HTTPConnection
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._path, self._headers, self._timeout = parts.path, headers, timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> Response:
        """POST once; a kept-alive connection the server has since closed is retried at
        once on a fresh one (safe: the server deduplicates on event_id)."""
        while True:
            reused = self._conn is not None
            try:
                return self._post_once(body)
            except Exception as exc:  # any failure to get an answer is retried, never fatal
                self.close()
                if not (reused and isinstance(exc, _STALE)):
                    return Response(None, error=f"{type(exc).__name__}: {exc}")
                log.debug("voxmon: stale keep-alive connection (%s); reconnecting", exc)

    def _post_once(self, body: bytes) -> Response:
        if self._conn is None:
            self._conn = self._factory(self._host, self._port, timeout=self._timeout)
        self._conn.request("POST", self._path, body, self._headers)
        answer = self._conn.getresponse()
        data = answer.read()
        if answer.will_close:
            self.close()
        return Response(answer.status, data, answer.getheader("Retry-After"))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AsyncEmitter(_Base):
    """asyncio emitter (aiohttp). ``emit`` is synchronous and must be called on the loop
    the emitter was started on: ``async with AsyncEmitter(url) as emitter: ...``."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._wakeup: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._wakeup, self._progress = asyncio.Event(), asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="voxmon-emitter")

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event emitted before the call is resolved; False on timeout."""
        target = self._flush_target()
        self._wake()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.outbox.resolved < target and self._progress is not None:
                    self._progress.clear()
                    await self._progress.wait()
        return self.outbox.resolved >= target

    async def close(self, timeout: float = 10.0) -> ClientStats:
        """Flush for up to ``timeout`` seconds, then stop; what is left counts as abandoned."""
        self.outbox.closed = True
        if self.courier.close_at is None:
            self.courier.close_at = self.clock.monotonic() + timeout
        self._wake()
        if self._task is None:
            self.courier.abandon()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout + self.timeout_s)
        return self.stats()

    async def __aenter__(self) -> AsyncEmitter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _run(self) -> None:
        assert self._wakeup is not None and self._progress is not None
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:
            while (step := self.courier.next()) is not None:
                if isinstance(step, Send):
                    self.courier.done(await _post(session, self.url, step.body))
                    self._progress.set()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), step)
                self._wakeup.clear()
        self._progress.set()


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> Response:
    try:
        async with session.post(url, data=body) as answer:
            data = await answer.read()
            return Response(answer.status, data, answer.headers.get("Retry-After"))
    except Exception as exc:  # any failure to get an answer is retried, never fatal
        return Response(None, error=f"{type(exc).__name__}: {exc}")
