"""The client's clocks: the only place voxmon_client reads time. Emitters take any object
with ``now()`` and ``monotonic()``, so tests can pass a clock they advance by hand."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Current wall time, UTC, timezone-aware (stamps events)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes backwards (times stages, paces
        batches and retries)."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()
