"""The sans-I/O sender shared by both emitters: what to send and when, and when to retry,
split or give up a batch. No network here, and no clock but the one it is given."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from voxmon_client.backoff import Backoff
from voxmon_client.clock import Clock
from voxmon_client.outbox import RECENT_ERRORS, EventError, Outbox
from voxmon_client.wire import Batch, Response, Send, encode, outcome, retry_after_s

log = logging.getLogger(__name__)

RETRIED_4XX = frozenset({408, 429})
"""Client errors that mean "later" rather than "never": request timeout, too many requests."""


@dataclass(slots=True)
class _Part:
    """A batch, or a half of one, awaiting its answer: ``strikes`` counts its 5xx answers
    (split or give up at ``max_attempts``), ``tries`` every failure (the backoff exponent);
    ``deadline`` is its root batch's first send + the retry budget."""

    batch: Batch
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
        errors, counts = outcome(part.batch, status, response.body)
        self.outbox.settle(part.send.count, errors, **counts)

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
        batch, errors = encode(self.outbox.take())
        if errors:
            self.outbox.settle(len(errors), errors, rejected=len(errors))
        if not batch.ids:
            return None
        part = _Part(batch, batch.send(), deadline=now + self._budget, not_before=now)
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
        retry_after = retry_after_s(response.retry_after, self._clock.now())
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
        halves = [_Part(h, h.send(), part.deadline, now) for h in part.batch.halves()]
        self._parts[i : i + 1] = halves
        self.outbox.settle(0, retries=1)
        log.warning("voxmon: %s for %d events; sending them in halves", why, part.send.count)

    def _give_up(self, part: _Part, why: str) -> None:
        self._parts.remove(part)
        ids = part.batch.ids
        errors = [EventError(event_id, "", f"given up: {why}") for event_id in ids]
        self.outbox.settle(part.send.count, errors[-RECENT_ERRORS:], failed=part.send.count)
        log.error("voxmon: gave up on %d events (%s); first: %s", len(ids), why, ids[0])

    def _bounded(self, wait: float, now: float) -> float:
        return wait if self.close_at is None else max(0.0, min(wait, self.close_at - now))

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
