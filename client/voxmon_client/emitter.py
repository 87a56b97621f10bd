"""``Emitter``: the fire-and-forget client for synchronous code, standard library only. A
background thread drives the courier and posts batches over one keep-alive connection.

``emit()`` only appends to a bounded in-memory outbox, so it never blocks on the network and
never raises. Delivery is at-least-once and voxmon deduplicates on ``event_id``, which stays
the same across retries, so every event is stored exactly once unless voxmon refuses it
(``rejected``), the outbox overflows (drop-oldest, ``dropped``), its retries run out
(``failed``: retries are bounded, see ``Courier``) or ``close()`` times out (``abandoned``).
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from voxmon_client.base import BaseEmitter
from voxmon_client.outbox import ClientStats
from voxmon_client.transport import HttpTransport
from voxmon_client.wire import Send


class Emitter(BaseEmitter):
    """Thread-based emitter for synchronous code (stdlib ``http.client``, keep-alive).
    ``close()`` it when done; at interpreter exit it flushes for ``exit_timeout_s``."""

    def __init__(self, url: str, *, exit_timeout_s: float = 2.0, **options: Any) -> None:
        super().__init__(url, **options)
        self._transport = HttpTransport(
            self.url, self.headers, self.timeout_s, self.connect_timeout_s
        )
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
