"""The live state's latency window (``exporter.live.latency.LatencyWindow``) on the
snapshots' digest: a sparse 1 % digest per series (each processing stage and end to end,
platform scope) and minute, keyed by event time like the window counters, so p50/p95/p99
over the last 60 minutes are within 1 % of exact. Memory is bounded by series x minutes x
occupied buckets (a few hundred per series at 1 %), not by the event rate."""

from __future__ import annotations

from collections.abc import Iterable

from exporter.live.latency import QUANTILES, MinuteLatency, series_of
from exporter.live.windows import window_bounds
from exporter.timestamps import MINUTE_MS
from rollup.buckets import GAMMA, MIN_MS
from rollup.digest import DigestBuilder, LatencyDigest


class LatencyWindows:
    """Per ``(series, minute)`` digest builders; a read merges the window's minutes."""

    bucketing = (GAMMA, MIN_MS)
    """The digest's growth factor and floor (ms), for bucketing durations in SQL."""

    def __init__(self) -> None:
        self._minutes: dict[tuple[str, int], DigestBuilder] = {}
        self._built: dict[tuple[str, int], LatencyDigest] = {}
        """Frozen digests of minutes unchanged since they were last read: a read rebuilds
        only the minutes that took durations since (usually just the current one)."""
        self._pruned_at = 0

    def _builder(self, series: str, minute_ms: int) -> DigestBuilder:
        key = (series, minute_ms - minute_ms % MINUTE_MS)
        self._built.pop(key, None)
        builder = self._minutes.get(key)
        if builder is None:
            builder = self._minutes[key] = DigestBuilder()
        return builder

    def apply(self, observations: Iterable[tuple[str, int, float]]) -> None:
        """Add ``(series, minute_ms, duration_ms)`` observations."""
        for series, minute_ms, duration_ms in observations:
            self._builder(series, minute_ms).add(duration_ms)

    def load(self, rows: Iterable[MinuteLatency]) -> None:
        """Add SQL-bucketed rows (the restore path)."""
        for item in rows:
            row = item.row
            self._builder(series_of(row.event_type), item.minute_ms).add_bucket(
                row.bucket, row.count, row.sum_ms, row.min_ms, row.max_ms
            )

    def digest(self, series: str, now_ms: int) -> LatencyDigest:
        """The merged digest of ``series`` over the window holding ``now_ms``."""
        bounds = window_bounds(now_ms)
        return LatencyDigest.merge_all(
            self._frozen(key, builder)
            for key, builder in self._minutes.items()
            if key[0] == series and bounds.start_ms <= key[1] < bounds.end_ms
        )

    def _frozen(self, key: tuple[str, int], builder: DigestBuilder) -> LatencyDigest:
        digest = self._built.get(key)
        if digest is None:
            digest = self._built[key] = builder.build()
        return digest

    def quantiles(self, series: str, now_ms: int) -> tuple[int, dict[float, float]]:
        """How many durations the window holds for ``series`` and its ``QUANTILES`` in
        seconds (empty when it holds none)."""
        digest = self.digest(series, now_ms)
        if not digest.count:
            return 0, {}
        return digest.count, {q: digest.quantile(q) / 1000.0 for q in QUANTILES}

    def prune(self, now_ms: int) -> None:
        """Drop minutes that have left the window (the work happens once a minute)."""
        start = window_bounds(now_ms).start_ms
        if start <= self._pruned_at:
            return
        self._pruned_at = start
        for key in [key for key in self._minutes if key[1] < start]:
            del self._minutes[key]
            self._built.pop(key, None)

    def clear(self) -> None:
        """Forget every minute (before a restore)."""
        self._minutes.clear()
        self._built.clear()
        self._pruned_at = 0

    def footprint(self) -> tuple[int, int]:
        """``(minute digests, occupied buckets)`` held, for the memory benchmark."""
        return len(self._minutes), sum(b.size for b in self._minutes.values())
