"""Organisations in first-seen order and the two caps that order decides: which orgs keep
their own ``org_id`` series (``max_org_series``) and which keep their own live 60-minute
window (``max_live_orgs``). Later orgs share ``__other__``; memory holds only the first few."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OTHER_ORG = "__other__"
"""Label value and live scope shared by the organisations beyond a cap."""


@dataclass(frozen=True, slots=True)
class OrgLabels:
    """Where one organisation's numbers go: its ``org_id`` label value in the Prometheus
    families and its live window scope (each the org itself or ``__other__``)."""

    series: str
    live: str


class OrgRegistry:
    """The first ``capacity`` organisations ever seen, with their first-seen positions.

    Storage keeps every organisation in first-seen order; this registry remembers only the
    positions below ``capacity = max(max_live_orgs, max_org_series)``, because no cap looks
    further. Once it is full, an organisation it does not hold is beyond both caps, whether
    it was seen before or not, so nothing here grows with the number of organisations.
    """

    def __init__(self, max_live_orgs: int, max_org_series: int) -> None:
        self.max_live_orgs = max_live_orgs
        self.max_org_series = max_org_series
        self.capacity = max(max_live_orgs, max_org_series)
        self.seen = 0
        """Organisations ever seen (all of them, as counted by storage)."""
        self._positions: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._positions)

    @property
    def live(self) -> int:
        """Organisations with their own live window (at most ``max_live_orgs``)."""
        return min(len(self._positions), self.max_live_orgs)

    def position(self, org: str) -> int | None:
        """First-seen position of ``org`` if it is among the first ``capacity``, else None."""
        return self._positions.get(org)

    def load(self, first: Iterable[str], seen: int) -> None:
        """Restore from storage: the first organisations in first-seen order, and how many
        organisations storage holds in all."""
        self._positions = {}
        self.register(first, 0)
        self.seen = max(seen, len(self._positions))

    def copy(self) -> OrgRegistry:
        twin = OrgRegistry(self.max_live_orgs, self.max_org_series)
        twin.seen, twin._positions = self.seen, dict(self._positions)
        return twin

    def register(self, orgs: Iterable[str], added: int) -> None:
        """Remember organisations a commit saw first, in arrival order, while there is room;
        ``added`` is how many of them storage had not seen before."""
        positions = self._positions
        for org in orgs:
            if len(positions) >= self.capacity:
                break
            positions.setdefault(org, len(positions))
        self.seen += added

    def labels(self, org: str, position: int | None) -> OrgLabels:
        """Labels of ``org`` at ``position`` (None: beyond every cap)."""
        if position is None:
            return OrgLabels(OTHER_ORG, OTHER_ORG)
        series = org if position < self.max_org_series else OTHER_ORG
        return OrgLabels(series, org if position < self.max_live_orgs else OTHER_ORG)

    def series_label(self, org: str) -> str:
        """``org_id`` label value: the org among the first ``max_org_series``, else
        ``__other__``; ``""`` (no organisation) stays ``""``."""
        return org and self.labels(org, self.position(org)).series

    def live_scope(self, org: str) -> str | None:
        """Live window scope of ``org``: itself, ``__other__`` when it is beyond the live cap,
        or None when it was never seen and would get its own window if it arrived now.
        (While fewer than ``max_live_orgs`` are held, the registry holds every org seen.)"""
        position = self.position(org)
        if position is None and len(self._positions) < self.max_live_orgs and org != OTHER_ORG:
            return None
        return self.labels(org, position).live


class OrgLabeller:
    """Labels for one commit's organisations. An org the registry does not hold gets the
    position ``OrgRegistry.register`` will give it after the commit, and is listed in
    ``unregistered`` (arrival order) so storage can record it if it is new."""

    def __init__(self, registry: OrgRegistry) -> None:
        self._registry = registry
        self._known: dict[str, OrgLabels] = {}
        self.unregistered: list[str] = []

    def __call__(self, org: str) -> OrgLabels:
        found = self._known.get(org)
        if found is None:
            registry = self._registry
            position = registry.position(org)
            if position is None:
                # While the registry has room every org it lacks is new: the next position.
                candidate = len(registry) + len(self.unregistered)
                position = candidate if candidate < registry.capacity else None
                self.unregistered.append(org)
            found = self._known[org] = registry.labels(org, position)
        return found
