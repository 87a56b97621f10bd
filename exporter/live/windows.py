"""Sliding 60-minute windows at minute resolution, keyed by event time, per scope.

A scope is the platform (``""``) or one organisation. Each scope holds minute buckets; a
window read sums at most 60 of them, so reads never scan events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from exporter.catalog import WINDOW_COUNTERS
from exporter.timestamps import MINUTE_MS

WINDOW_MINUTES = 60
PLATFORM = ""
"""Scope key of the platform (every event); organisation scopes use the org_id."""


@dataclass(frozen=True, slots=True)
class WindowBounds:
    """The live window ``[start_ms, end_ms)``: the 60 whole minutes ending with the current
    minute. An event exactly 60 minutes older than the current minute's start is outside."""

    start_ms: int
    end_ms: int


def window_bounds(now_ms: int) -> WindowBounds:
    """Window containing ``now_ms``: ``[floor_minute(now) - 59 min, floor_minute(now) + 1 min)``."""
    current = now_ms - now_ms % MINUTE_MS
    return WindowBounds(current - (WINDOW_MINUTES - 1) * MINUTE_MS, current + MINUTE_MS)


_INDEX = {name: index for index, name in enumerate(WINDOW_COUNTERS)}


class MinuteWindows:
    """Minute buckets per scope. Buckets before the window start are pruned as it slides;
    buckets after the current minute (events up to 5 min in the future) wait to enter it.

    A scope's buckets are one flat dict keyed by ``minute_ms + counter index``: minutes are
    multiples of 60,000 ms, so the key decodes back, and a bucket costs about a third of a
    dict per minute (it matters with thousands of live organisations).
    """

    def __init__(self) -> None:
        self._scopes: dict[str, dict[int, float]] = {}
        self._pruned_at = 0

    def add(self, scope: str, minute_ms: int, counter: str, value: float) -> None:
        buckets = self._scopes.setdefault(scope, {})
        key = minute_ms - minute_ms % MINUTE_MS + _INDEX[counter]
        buckets[key] = buckets.get(key, 0.0) + value

    def apply(self, deltas: Mapping[tuple[str, int, str], float]) -> None:
        """Add ``(scope, minute_ms, counter) -> delta`` rows."""
        for (scope, minute_ms, counter), value in deltas.items():
            self.add(scope, minute_ms, counter, value)

    def totals(self, scope: str, now_ms: int) -> dict[str, float]:
        """Each window counter summed over the window holding ``now_ms`` (0 for unseen).
        Sums are exact (``math.fsum``), so they do not depend on the order the buckets were
        filled in: a restored replica and one that applied the same commits live agree."""
        bounds = window_bounds(now_ms)
        parts: list[list[float]] = [[] for _ in WINDOW_COUNTERS]
        for key, value in self._scopes.get(scope, {}).items():
            index = key % MINUTE_MS
            if bounds.start_ms <= key - index < bounds.end_ms:
                parts[index].append(value)
        return dict(zip(WINDOW_COUNTERS, map(math.fsum, parts), strict=True))

    def scopes(self) -> Iterable[str]:
        return self._scopes.keys()

    def prune(self, now_ms: int) -> None:
        """Drop buckets that have left the window; cheap to call often (once a minute does
        the work)."""
        start = window_bounds(now_ms).start_ms
        if start <= self._pruned_at:
            return
        self._pruned_at = start
        for scope in list(self._scopes):
            buckets = self._scopes[scope]
            for key in [k for k in buckets if k < start]:  # k < start iff its minute is
                del buckets[key]
            if not buckets and scope != PLATFORM:
                del self._scopes[scope]
