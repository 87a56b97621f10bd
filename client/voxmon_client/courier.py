"""The sans-I/O sender shared by both emitters: what to send and when, how to read
voxmon's answers, and when to retry, split or give up a batch. No network here."""

from __future__ import annotations

import email.utils
import logging
import random
from dataclasses import dataclass
from typing import Any

import msgspec

from exporter.clock import Clock
from exporter.outbox import RECENT_ERRORS, EventError, Fields, Outbox

log = logging.getLogger(__name__)

INGEST_PATH = "/v1/events"
RETRIED_4XX = frozenset({408, 429})
"""Client errors that mean "later" rather than "never": request timeout, too many requests."""


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
class _Part:
    """A batch, or a half of one, awaiting its answer: ``strikes`` counts its 5xx answers
    (split or give up at ``max_attempts``), ``tries`` every failure (the backoff exponent);
    ``deadline`` is its root batch's first send + the retry budget."""

    send: Send
    deadline: float
    not_before: float = 0.0
    tries: int = 0
    strikes: int = 0


class Courier:
    """The sender's state machine, free of I/O so both emitters (and tests) drive it:
    ``next()`` says send this batch now, or wait so many seconds (less if woken);
    ``done(response)`` settles what was sent, or schedules its retry, split or give-up.

    Nothing is retried forever. A batch answered 5xx ``max_attempts`` times is split in
    halves retried on their own (413 splits at once), so only an event that fails alone is
    given up (``failed``); no answer and "later" (408, 429, 503 + Retry-After) are retried
    whole. Every retry of a batch and of its halves ends ``budget_s`` after its first send.
    After n failed requests in a row the whole sender pauses backoff(n), so a failing voxmon
    sees a trickle, not a storm; while it is unreachable or fails everything no new batch
    starts (the outbox holds the events). Otherwise new batches go between retries."""

    def __init__(
        self,
        outbox: Outbox,
        clock: Clock,
        backoff: Backoff,
        interval_s: float,
        rng: random.Random,
        *,
        max_attempts: int = 5,
        budget_s: float = 120.0,
    ) -> None:
        self.outbox, self._clock, self._backoff = outbox, clock, backoff
        self._interval, self._rng = interval_s, rng
        self._max_attempts, self._budget = max(1, max_attempts), budget_s
        self._parts: list[_Part] = []
        """Batches and halves sent but not settled, oldest events first."""
        self._sending: _Part | None = None
        self._streak = 0
        """Failed requests in a row, whatever the batch."""
        self._unreachable = False
        """The last failure got no answer, or "later"."""
        self._paused_until = 0.0
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
        if now < self._paused_until:
            return self._bounded(self._paused_until - now, now)
        step = self._pick(now)
        if isinstance(step, float):
            return self._bounded(step, now)
        self._sending = step
        return step.send

    @property
    def idle(self) -> bool:
        return not self._parts and not self.outbox.queue

    def done(self, response: Response) -> None:
        """Settle what ``next()`` handed out from the server's answer, or retry it."""
        part, self._sending = self._sending, None
        if part is None:  # abandoned by close() while the request was out
            return
        status = response.status
        if status is None or status >= 500 or status in RETRIED_4XX:
            self._failure(part, response)
            return
        if self._streak:
            log.info("voxmon answering again after %d failed requests", self._streak)
        self._streak, self._unreachable = 0, False
        if status == 413 and part.send.count > 1:
            self._split(part, "HTTP 413")
            return
        self._parts.remove(part)
        errors, outcome = _outcome(part.send, status, response.body)
        self.outbox.settle(part.send.count, errors, **outcome)

    def _pick(self, now: float) -> _Part | float:
        """A due part (the longest due first, so fresh halves go before the one that keeps
        failing) or a new batch to send now, else seconds until one may be. After a failed
        request a new batch goes first, so retries never starve the events behind them."""
        due = [p for p in self._parts if p.not_before <= now]
        retry = min(due, key=lambda p: p.not_before, default=None)
        fresh = self._fresh_in(now)
        if retry is not None and (self._streak == 0 or fresh != 0.0):
            return retry
        if fresh == 0.0:
            return self._take(now) or 0.0
        waits = [p.not_before - now for p in self._parts]
        return min([*waits, self._interval if fresh is None else fresh])

    def _fresh_in(self, now: float) -> float | None:
        """Seconds until a new batch is due (0 = now), None while none may start."""
        queued = len(self.outbox.queue)
        failing = self._unreachable or self._streak >= self._max_attempts
        if not queued or (self._parts and failing):
            return None
        urgent = self.outbox.resolved < self.flush_target or self.close_at is not None
        if queued >= self.outbox.batch_size or urgent:
            return 0.0
        return max(0.0, self._last_send + self._interval - now)

    def _take(self, now: float) -> _Part | None:
        self._last_send = now
        send = self._encode(self.outbox.take())
        if send is None:
            return None
        part = _Part(send, deadline=now + self._budget, not_before=now)
        self._parts.append(part)
        return part

    def _failure(self, part: _Part, response: Response) -> None:
        status, now = response.status, self._clock.monotonic()
        later = status is None or status in RETRIED_4XX or (status == 503 and response.retry_after)
        why = f"HTTP {status}" if status else response.error
        self._streak, self._unreachable = self._streak + 1, bool(later)
        part.tries, part.strikes = part.tries + 1, part.strikes + (not later)
        if part.strikes >= self._max_attempts and part.send.count > 1 and now < part.deadline:
            self._split(part, f"{why} {part.strikes} times")
            return
        retry_after = _retry_after_s(response.retry_after, self._clock)
        pause = self._backoff.delay(self._streak - 1, retry_after, self._rng)
        self._paused_until = now + pause
        delay = max(pause, self._backoff.delay(part.tries - 1, retry_after, self._rng))
        if part.strikes >= self._max_attempts:
            self._give_up(part, f"{why} on each of {part.tries} attempts")
        elif now + delay > part.deadline:
            self._give_up(part, f"{why}; retry budget of {self._budget:g} s spent")
        else:
            part.not_before = now + delay
            self.outbox.settle(0, retries=1)
            level = logging.WARNING if self._streak in (1, 10) else logging.DEBUG
            log.log(level, "voxmon: %s; retrying %d events in %.2fs", why, part.send.count, delay)

    def _split(self, part: _Part, why: str) -> None:
        """Replace ``part`` by its halves, due now, within the same budget."""
        now, i = self._clock.monotonic(), self._parts.index(part)
        halves = [_Part(half, part.deadline, now) for half in _halves(part.send)]
        self._parts[i : i + 1] = halves
        self.outbox.settle(0, retries=1)
        log.warning("voxmon: %s for %d events; sending them in halves", why, part.send.count)

    def _give_up(self, part: _Part, why: str) -> None:
        self._parts.remove(part)
        ids = _event_ids(part.send.body)
        errors = [EventError(event_id, "", f"given up: {why}") for event_id in ids]
        self.outbox.settle(part.send.count, errors[-RECENT_ERRORS:], failed=part.send.count)
        log.error("voxmon: gave up on %d events (%s); first: %s", len(ids), why, ids[:1])

    def _bounded(self, wait: float, now: float) -> float:
        return wait if self.close_at is None else max(0.0, min(wait, self.close_at - now))

    def _encode(self, events: list[Fields]) -> Send | None:
        """One JSON array; events msgspec cannot encode are rejected here, not sent."""
        try:
            return Send(msgspec.json.encode(events), len(events))
        except Exception:
            good, errors = [], []
            for event in events:
                try:
                    good.append(msgspec.json.encode(event))
                except Exception as exc:
                    log.error("voxmon: cannot encode %s event: %s", event.get("event_type"), exc)
                    errors.append(EventError(str(event.get("event_id")), "", f"unencodable: {exc}"))
            self.outbox.settle(len(errors), errors, rejected=len(errors))
            return Send(b"[" + b",".join(good) + b"]", len(good)) if good else None

    def abandon(self) -> None:
        """Count everything still queued or in flight as abandoned (at close)."""
        with self.outbox.lock:
            left = len(self.outbox.queue) + self.outbox.in_flight
            self.outbox.queue.clear()
            self.outbox.in_flight = 0
            self.outbox.counts["abandoned"] += left
        self._parts, self._sending = [], None
        if left:
            log.error("voxmon: closing with %d undelivered events (abandoned)", left)


class _Id(msgspec.Struct):
    event_id: Any = None


def _event_ids(body: bytes) -> list[str]:
    try:
        return [str(item.event_id) for item in msgspec.json.decode(body, type=list[_Id])]
    except msgspec.DecodeError:
        return []


def _halves(send: Send) -> list[Send]:
    """The events of ``send`` in two JSON arrays, each item's bytes as first encoded."""
    items = msgspec.json.decode(send.body, type=list[msgspec.Raw])
    mid = len(items) // 2
    return [Send(b"[" + b",".join(part) + b"]", len(part)) for part in (items[:mid], items[mid:])]


def _outcome(send: Send, status: int, body: bytes) -> tuple[list[EventError], dict[str, int]]:
    """Errors and counts for a final answer. 2xx and 400 list rejections per item (the list
    may be truncated, so what voxmon did not accept is counted rejected); any other final
    status refuses the whole request."""
    count = send.count
    try:
        answer: Any = msgspec.json.decode(body) if status < 300 or status == 400 else None
        accepted = min(max(int(answer["accepted"]), 0), count)
        duplicates = min(max(int(answer["duplicates"]), 0), count - accepted)
        rows = answer["rejected"]
    except Exception:
        if status < 300:  # committed, whatever the body says
            return [], {"accepted": count}
        message = _error_message(status, body)
        log.error("voxmon refused %d events: %s", count, message)
        ids = _event_ids(send.body)[-RECENT_ERRORS:]
        return [EventError(i, "", message) for i in ids], {"rejected": count}
    rejected, errors = count - accepted - duplicates, _item_errors(rows)
    if rejected:
        log.warning("voxmon rejected %d of %d events; first: %s", rejected, count, errors[:1])
    return errors, {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}


def _item_errors(rows: Any) -> list[EventError]:
    """The last ``RECENT_ERRORS`` errors of the rejected items of a 200 or 400 body (none
    if the list is not the documented shape: the counts stand without them)."""
    errors = []
    try:
        for row in rows[-RECENT_ERRORS:]:
            event_id = str(row.get("event_id") or "")
            for error in row.get("errors") or [{}]:
                field, message = error.get("field", ""), error.get("message", "rejected")
                errors.append(EventError(event_id, str(field), str(message)))
    except Exception:
        log.warning("voxmon: unexpected rejected list: %.200r", rows)
    return errors[-RECENT_ERRORS:]


def _error_message(status: int, body: bytes) -> str:
    """``HTTP 401 unauthorized: <message>`` from voxmon's error body, else its first bytes."""
    try:
        error = msgspec.json.decode(body)["error"]
        return f"HTTP {status} {error['code']}: {error['message']}"
    except Exception:
        return f"HTTP {status}: {body[:200].decode(errors='replace')}"


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
