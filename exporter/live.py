"""Live in-memory state read by ``/metrics`` and the realtime API: monotonic counters,
maxima, 60-minute windows and the org series cap. Updated only from committed tallies."""

from __future__ import annotations

from collections.abc import Iterable, KeysView, Mapping

from exporter.inflight import InflightIndex
from exporter.tally import Key, Tally
from exporter.windows import MinuteWindows

OTHER_ORG = "__other__"


class LiveState:
    """Everything ``/metrics`` and ``/v1/metrics/realtime`` need, O(1) to update."""

    def __init__(self, max_org_series: int) -> None:
        self.max_org_series = max_org_series
        self.counters: dict[Key, float] = {}
        self.maxima: dict[Key, float] = {}
        self.windows = MinuteWindows()
        self.inflight = InflightIndex()
        self.latency_baseline_s: dict[str, float] = {}
        """Per-stage p95 over the last 7 days of hourly snapshots (set by the rollup
        wiring; a stage is absent until it has 6 hours of baseline)."""
        self._org_order: dict[str, int] = {}

    def apply(self, tally: Tally, now_ms: int) -> None:
        """Add one committed tally; called after its transaction commits."""
        counters = self.counters
        for key, value in tally.counters.items():
            counters[key] = counters.get(key, 0.0) + value
        for key, value in tally.maxima.items():
            if value > self.maxima.get(key, float("-inf")):
                self.maxima[key] = value
        self.windows.apply(tally.minutes)
        self.windows.prune(now_ms)
        self.register_orgs(tally.new_orgs)

    def load(
        self,
        counters: Mapping[Key, float],
        maxima: Mapping[Key, float],
        minutes: Mapping[tuple[str, int, str], float],
        orgs: Iterable[str],
    ) -> None:
        """Restore persisted state at start (``orgs`` in first-seen order)."""
        self.counters = dict(counters)
        self.maxima = dict(maxima)
        self.windows = MinuteWindows()
        self.windows.apply(minutes)
        self._org_order = {}
        self.register_orgs(orgs)

    @property
    def known_orgs(self) -> KeysView[str]:
        return self._org_order.keys()

    def register_orgs(self, orgs: Iterable[str]) -> None:
        for org in orgs:
            self._org_order.setdefault(org, len(self._org_order))

    def org_label(self, org: str) -> str:
        """Label value for an org: itself if among the first ``max_org_series`` orgs seen
        (a stable set, so counters stay monotonic), else ``__other__``. ``""`` stays ``""``."""
        if not org:
            return org
        position = self._org_order.get(org)
        if position is not None and position < self.max_org_series:
            return org
        return OTHER_ORG
