"""The sans-I/O core shared by both emitters: the bounded outbox with exact counters, the
courier that decides what to send and when, and backoff with jitter. No network here."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from exporter.clock import Clock

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
