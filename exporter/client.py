"""Client library for pipeline code: fire-and-forget event emitters (``Emitter`` on a thread,
``AsyncEmitter`` on asyncio) around one sans-I/O core that batches, retries and counts.

``emit()`` only appends to a bounded in-memory outbox, so it never blocks on the network and
never raises; a background sender posts batches to ``POST /v1/events``. Delivery is
at-least-once and the server deduplicates on ``event_id``, which stays the same across
retries, so every event is stored exactly once unless the outbox overflows (drop-oldest,
counted in ``dropped``) or ``close()`` times out (counted in ``abandoned``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import email.utils
import http.client
import logging
import random
import threading
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp
import msgspec

from exporter.catalog import EVENT_TYPES, STARTED_TYPE, Kind
from exporter.clock import Clock, SystemClock

log = logging.getLogger(__name__)

INGEST_PATH = "/v1/events"
RETRIED_4XX = frozenset({408, 429})
"""Client errors that mean "later" rather than "never": request timeout, too many requests."""

Fields = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Event counts since the emitter was created. Every emitted event ends up in exactly
    one of accepted, duplicates, rejected, dropped, abandoned, or is still pending."""

    emitted: int
    accepted: int
    duplicates: int
    rejected: int
    dropped: int
    abandoned: int
    pending: int
    retries: int
    """Failed attempts that were retried (requests, not events)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with equal jitter: attempt n waits in [d/2, d] seconds where
    d = min(cap_s, base_s * 2**n); a ``Retry-After`` from the server is a lower bound
    (clipped to ``max_retry_after_s`` so a bad header cannot stall the client)."""

    base_s: float = 0.1
    cap_s: float = 5.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after_s: float, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt, 60))
        jittered = ceiling / 2 + rng.uniform(0, ceiling / 2)
        return float(max(jittered, min(retry_after_s, self.max_retry_after_s)))


@dataclass(frozen=True, slots=True)
class Response:
    """What the transport saw: an HTTP status, or ``status=None`` for a connection error or
    timeout (``error`` says which)."""

    status: int | None
    body: bytes = b""
    retry_after: str | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class Send:
    """The sender should POST ``body`` (a JSON array of ``count`` events) now."""

    body: bytes
    count: int


@dataclass(slots=True)
class Outbox:
    """Bounded FIFO of events not yet acknowledged, with exact counters; thread-safe. The
    bound counts queued *and* in-flight events, so it holds whatever the sender is doing."""

    capacity: int
    batch_size: int
    queue: deque[Fields] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    closed: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.batch_size = max(1, min(self.batch_size, self.capacity))
        names = ("emitted", "accepted", "duplicates", "rejected", "dropped", "abandoned")
        self.counts = dict.fromkeys((*names, "retries"), 0)

    def put(self, event: Fields) -> bool:
        """Append, dropping the oldest queued event when full (the new one if everything is
        in flight). True when a full batch is waiting, so the sender should wake."""
        with self.lock:
            counts = self.counts
            counts["emitted"] += 1
            if self.closed or len(self.queue) + self.in_flight >= self.capacity:
                counts["dropped"] += 1
                if self.closed or not self.queue:
                    return False
                self.queue.popleft()
            self.queue.append(event)
            return len(self.queue) == self.batch_size

    def take(self) -> list[Fields]:
        with self.lock:
            n = min(self.batch_size, len(self.queue))
            batch = [self.queue.popleft() for _ in range(n)]
            self.in_flight += n
            return batch

    def settle(self, in_flight: int, **outcome: int) -> None:
        with self.lock:
            self.in_flight -= in_flight
            for name, n in outcome.items():
                self.counts[name] += n

    @property
    def resolved(self) -> int:
        c = self.counts
        return c["accepted"] + c["duplicates"] + c["rejected"] + c["dropped"] + c["abandoned"]

    def stats(self) -> ClientStats:
        with self.lock:
            return ClientStats(**self.counts, pending=len(self.queue) + self.in_flight)


class Courier:
    """The sender's state machine, free of I/O so both emitters (and tests) drive it:
    ``next()`` says send this batch now, or wait so many seconds (less if woken);
    ``done(response)`` settles the batch or schedules its retry with the same bytes."""

    def __init__(
        self, outbox: Outbox, clock: Clock, backoff: Backoff, interval_s: float, rng: random.Random
    ) -> None:
        self.outbox, self._clock, self._backoff = outbox, clock, backoff
        self._interval, self._rng = interval_s, rng
        self._batch: Send | None = None
        self._attempt = 0
        self._not_before = 0.0
        self._last_send = clock.monotonic()
        self.flush_target = 0
        """Send partial batches until this many events are resolved (set by flush)."""
        self.close_at: float | None = None
        """Monotonic deadline after which ``next()`` abandons what is left and stops."""

    def next(self) -> Send | float | None:
        """A batch to send now, seconds to wait (the emitter may wake the sender earlier),
        or None once closed and done."""
        now = self._clock.monotonic()
        if self.close_at is not None and (self.idle or now >= self.close_at):
            self.abandon()
            return None
        if self._batch is None:
            due = self._last_send + self._interval
            queued = len(self.outbox.queue)
            urgent = self.outbox.resolved < self.flush_target or self.close_at is not None
            if not queued or (queued < self.outbox.batch_size and now < due and not urgent):
                return self._bounded(due - now if queued else self._interval, now)
            self._last_send = now
            self._batch = self._encode(self.outbox.take())
            if self._batch is None:
                return 0.0
        if now < self._not_before:
            return self._bounded(self._not_before - now, now)
        return self._batch

    @property
    def idle(self) -> bool:
        return self._batch is None and not self.outbox.queue

    def done(self, response: Response) -> None:
        """Settle the in-flight batch from the server's answer, or schedule a retry."""
        batch = self._batch
        if batch is None:  # abandoned by close() while the request was out
            return
        status = response.status
        if status is None or status >= 500 or status in RETRIED_4XX:
            self._retry(batch, response)
            return
        if self._attempt:
            log.info("voxmon reachable again after %d failed attempts", self._attempt)
        self._batch, self._attempt = None, 0
        self.outbox.settle(batch.count, **_outcome(batch.count, status, response.body))

    def _retry(self, batch: Send, response: Response) -> None:
        why = f"HTTP {response.status}" if response.status else response.error
        retry_after = _retry_after_s(response.retry_after, self._clock)
        delay = self._backoff.delay(self._attempt, retry_after, self._rng)
        level = logging.WARNING if self._attempt in (0, 10) else logging.DEBUG
        log.log(level, "voxmon: %s; retrying %d events in %.2fs", why, batch.count, delay)
        self._attempt += 1
        self._not_before = self._clock.monotonic() + delay
        self.outbox.settle(0, retries=1)

    def _bounded(self, wait: float, now: float) -> float:
        return wait if self.close_at is None else max(0.0, min(wait, self.close_at - now))

    def _encode(self, events: list[Fields]) -> Send | None:
        """One JSON array; events msgspec cannot encode are rejected here, not sent."""
        try:
            return Send(msgspec.json.encode(events), len(events))
        except Exception:
            good = []
            for event in events:
                try:
                    good.append(msgspec.json.encode(event))
                except Exception as exc:
                    log.error("voxmon: cannot encode %s event: %s", event.get("event_type"), exc)
            self.outbox.settle(len(events) - len(good), rejected=len(events) - len(good))
            return Send(b"[" + b",".join(good) + b"]", len(good)) if good else None

    def abandon(self) -> None:
        """Count everything still queued or in flight as abandoned (at close)."""
        with self.outbox.lock:
            left = len(self.outbox.queue) + self.outbox.in_flight
            self.outbox.queue.clear()
            self.outbox.in_flight = 0
            self.outbox.counts["abandoned"] += left
        self._batch = None
        if left:
            log.error("voxmon: closing with %d undelivered events (abandoned)", left)


def _outcome(count: int, status: int, body: bytes) -> dict[str, int]:
    """Counts for a final answer: 200 (and 400, same body) list rejections by index; any
    other final status rejects the whole batch."""
    try:
        answer: Any = msgspec.json.decode(body) if status in (200, 400) else None
        accepted, duplicates = int(answer["accepted"]), int(answer["duplicates"])
        rejected = list(answer["rejected"])
    except Exception:
        if status == 200:  # committed, whatever the body says
            return {"accepted": count}
        log.error("voxmon refused %d events: HTTP %d %s", count, status, body[:500])
        return {"rejected": count}
    if rejected:
        log.warning("voxmon rejected %d of %d events; first: %s", len(rejected), count, rejected[0])
    return {"accepted": accepted, "duplicates": duplicates, "rejected": len(rejected)}


def _retry_after_s(value: str | None, clock: Clock) -> float:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; 0 when absent or bad."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (email.utils.parsedate_to_datetime(value) - clock.now()).total_seconds())
    except (TypeError, ValueError):
        return 0.0


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
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.outbox = Outbox(capacity, batch_size)
        self.courier = Courier(
            self.outbox, self.clock, backoff or Backoff(), interval_s, rng or random.Random()
        )
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
