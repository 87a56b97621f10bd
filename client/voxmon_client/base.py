"""What both emitters share: the options, the outbox, the courier, ``emit``, ``stage`` and
``stats``. The sending loop, and so the I/O, is each emitter's own."""

from __future__ import annotations

import logging
import random
import uuid
from typing import Any

from voxmon_client.backoff import Backoff
from voxmon_client.clock import Clock, SystemClock
from voxmon_client.courier import Courier
from voxmon_client.outbox import ClientStats, Outbox
from voxmon_client.stage import Stage
from voxmon_client.wire import INGEST_PATH

log = logging.getLogger(__name__)


class BaseEmitter:
    """The part of an emitter that pipeline code calls: never blocks, never raises."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        capacity: int = 10_000,
        batch_size: int = 500,
        interval_s: float = 1.0,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        max_attempts: int = 5,
        retry_budget_s: float = 120.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.outbox = Outbox(capacity, batch_size)
        self.courier = Courier(
            self.outbox, self.clock, backoff or Backoff(), interval_s, rng or random.Random(),
            max_attempts=max_attempts, budget_s=retry_budget_s,
        )  # fmt: skip
        self.url = url.rstrip("/") + INGEST_PATH
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s

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
