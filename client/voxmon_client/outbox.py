"""The client's bounded outbox: events not yet acknowledged, exact counters of where every
emitted event went, and the latest per-event errors. Thread-safe, no I/O."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

RECENT_ERRORS = 100
"""How many of the latest per-event errors ``ClientStats.recent_errors`` keeps."""

Fields = dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventError:
    """Why one event was not stored: voxmon's per-item error (``field`` is its dotted path,
    e.g. ``metadata.claim_count``), or ``field=""`` for a refusal of the whole request or
    an event the client gave up on."""

    event_id: str
    field: str
    message: str


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Event counts since the emitter was created. Every emitted event ends up in exactly
    one of accepted, duplicates, rejected, dropped, abandoned, failed, or is still pending."""

    emitted: int
    accepted: int
    duplicates: int
    rejected: int
    """Refused by voxmon (a final 4xx, or per item) or not encodable; never retried."""
    dropped: int
    abandoned: int
    failed: int
    """Given up after bounded retries: 5xx alone ``max_attempts`` times, or out of budget."""
    pending: int
    retries: int
    """Failed requests whose events were sent again, whole or split (requests, not events)."""
    recent_errors: tuple[EventError, ...] = ()
    """The latest ``RECENT_ERRORS`` rejections and give-ups, oldest first."""


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
    errors: deque[EventError] = field(default_factory=lambda: deque(maxlen=RECENT_ERRORS))

    def __post_init__(self) -> None:
        self.batch_size = max(1, min(self.batch_size, self.capacity))
        names = ("emitted", "accepted", "duplicates", "rejected", "dropped", "abandoned")
        self.counts = dict.fromkeys((*names, "failed", "retries"), 0)

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

    def settle(self, in_flight: int, errors: list[EventError] | None = None, **n: int) -> None:
        with self.lock:
            self.in_flight -= in_flight
            for name, count in n.items():
                self.counts[name] += count
            self.errors.extend(errors or ())

    @property
    def resolved(self) -> int:
        c = self.counts
        final = c["accepted"] + c["duplicates"] + c["rejected"] + c["dropped"]
        return final + c["abandoned"] + c["failed"]

    def stats(self) -> ClientStats:
        with self.lock:
            pending = len(self.queue) + self.in_flight
            return ClientStats(**self.counts, pending=pending, recent_errors=tuple(self.errors))
