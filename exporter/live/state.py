"""Live in-memory state read by ``/metrics`` and the realtime API: monotonic counters,
maxima, 60-minute windows and the organisation caps. Updated only from committed tallies;
bounded by the caps, never by the number of organisations seen."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from exporter.live.families import ORG_POSITIONS, Key
from exporter.live.journal import Entry
from exporter.live.latency import LatencyWindow, MinuteLatency
from exporter.live.orgs import OrgRegistry
from exporter.live.tally import Tally
from exporter.live.windows import PLATFORM, MinuteWindows
from exporter.records import InflightFigures

Minutes = Mapping[tuple[str, int, str], float]


class LiveState:
    """Everything ``/metrics`` and ``/v1/metrics/realtime`` need, O(1) to update.

    ``windows`` hold one scope per organisation with a live window (the first
    ``max_live_orgs``) plus ``__other__``; ``series_windows`` the same buckets summed by
    ``org_id`` label value (the first ``max_org_series`` and ``__other__``), which is all
    ``/metrics`` reads, so a scrape costs the same however many organisations are live.
    """

    def __init__(self, max_org_series: int, max_live_orgs: int, latency: LatencyWindow) -> None:
        self.orgs = OrgRegistry(max_live_orgs, max_org_series)
        self.counters: dict[Key, float] = {}
        self.maxima: dict[Key, float] = {}
        self.windows = MinuteWindows()
        self.series_windows = MinuteWindows()
        self.latency = latency
        """Platform-scope latency digests per stage and end to end, per minute."""
        self.inflight = InflightFigures({})
        """The in-flight gauges as last read from the shared in-flight table (before each
        scrape; the table is kept in the ingest transaction)."""
        self.latency_baseline_s: dict[str, float] = {}
        """Per-stage p95 over the last 7 days of hourly snapshots (set by the rollup
        wiring; a stage is absent until it has 6 hours of baseline)."""
        self.applied_id = 0
        """The last shared-journal entry applied (``journal.py``); 0 on storage that keeps
        no journal (SQLite: one daemon per file)."""
        self.recount_inflight = False
        """Set when the follower applied an entry of an earlier version (a commit that left
        the in-flight table as it was): the next commit here recounts the table."""

    def take(self, entry_id: int | None) -> bool:
        """Whether the change journalled as ``entry_id`` (None: not journalled) is still to
        apply here, marking it applied: a change reaches a replica both from its own commit
        and from the journal, and only the first counts."""
        if entry_id is None:
            return True
        if entry_id <= self.applied_id:
            return False
        self.applied_id = entry_id
        return True

    def apply_entry(self, entry_id: int, entry: Entry, now_ms: int) -> None:
        """Apply another replica's journalled commit (its counters stay its own)."""
        if self.take(entry_id):
            self.apply(entry.tally(), now_ms)

    def apply(self, tally: Tally, now_ms: int) -> None:
        """Add one committed tally; called after its transaction commits."""
        counters = self.counters
        for key, value in tally.counters.items():
            counters[key] = counters.get(key, 0.0) + value
        for key, value in tally.maxima.items():
            if value > self.maxima.get(key, float("-inf")):
                self.maxima[key] = value
        self.orgs.register(tally.new_orgs, tally.orgs_added)
        self.windows.apply(tally.minutes)
        self.series_windows.apply(_rescoped(tally.minutes, self.orgs.series_label))
        self.latency.apply(tally.latencies)
        self.windows.prune(now_ms)
        self.series_windows.prune(now_ms)
        self.latency.prune(now_ms)

    def load(
        self,
        counters: Mapping[Key, float],
        maxima: Mapping[Key, float],
        minutes: Minutes,
        orgs: Iterable[str],
        orgs_seen: int,
        latencies: Iterable[MinuteLatency] = (),
    ) -> None:
        """Restore persisted state at start: ``orgs`` are the first organisations in
        first-seen order (at least the registry's capacity when there are that many),
        ``orgs_seen`` how many storage holds. Rows persisted under other caps (or before
        there were any) are folded under today's labels and scopes. ``latencies`` are the
        window's durations rebuilt from stored events."""
        self.orgs.load(orgs, orgs_seen)
        self.counters = _relabelled(counters, self.orgs.series_label)
        self.maxima = dict(maxima)
        live_minutes = _rescoped(minutes, self._live_scope)
        self.windows = MinuteWindows()
        self.windows.apply(live_minutes)
        self.series_windows = MinuteWindows()
        self.series_windows.apply(_rescoped(live_minutes, self.orgs.series_label))
        self.latency.clear()
        self.latency.load(latencies)

    def _live_scope(self, scope: str) -> str:
        return self.orgs.live_scope(scope) or scope


def _rescoped(
    minutes: Minutes, scope_of: Callable[[str], str]
) -> dict[tuple[str, int, str], float]:
    """Window buckets summed under ``scope_of(scope)``; the platform scope stays."""
    out: dict[tuple[str, int, str], float] = {}
    for (scope, minute_ms, counter), value in minutes.items():
        key = (scope_of(scope) if scope != PLATFORM else scope, minute_ms, counter)
        out[key] = out.get(key, 0.0) + value
    return out


def _relabelled(counters: Mapping[Key, float], label_of: Callable[[str], str]) -> dict[Key, float]:
    """Counters with each org_id value replaced by ``label_of(org)`` and summed."""
    out: dict[Key, float] = {}
    for key, value in counters.items():
        index = ORG_POSITIONS.get(key[0])
        if index is not None and index < len(key):
            key = (*key[:index], label_of(key[index]), *key[index + 1 :])
        out[key] = out.get(key, 0.0) + value
    return out
