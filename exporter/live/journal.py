"""The shared change journal: what one replica's commit changed in the state every replica
shows (window minute buckets, window latencies, first-seen organisations), encoded once in
the commit's transaction so the other replicas can apply the same change. Notes in flight
are not journalled: every replica reads the shared in-flight table per scrape.

Counters are not journalled: each replica exports only its own (persisted per instance).
Entries carry increasing ids in commit order (write transactions are serialized), so a
replica that applies every entry above the last id it applied, in id order, holds the same
windows and registry as every other (docs/decisions/shared-live-state.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from exporter.live.orgs import OrgRegistry
from exporter.live.tally import Tally


class Entry(msgspec.Struct, array_like=True):
    """One commit's shared changes."""

    minutes: list[tuple[str, int, str, float]]
    latencies: list[tuple[str, int, float]]
    new_orgs: list[str]
    orgs_added: int
    inflight: list[msgspec.Raw] = msgspec.field(default_factory=list)
    """Per-note in-flight changes, written by voxmon versions that kept an in-flight index
    in memory; read and ignored (the shared in-flight table replaced them)."""

    def tally(self) -> Tally:
        """The entry as a tally without counters (another replica's counters stay its own)."""
        return Tally(
            minutes={(s, m, c): v for s, m, c, v in self.minutes},
            new_orgs=list(self.new_orgs),
            orgs_added=self.orgs_added,
            latencies=list(self.latencies),
        )


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


def encode(counted: Tally) -> bytes:
    """The journal body of one commit: its tally's shared parts."""
    return _encoder.encode(
        Entry(
            minutes=[(s, m, c, v) for (s, m, c), v in counted.minutes.items()],
            latencies=counted.latencies,
            new_orgs=counted.new_orgs,
            orgs_added=counted.orgs_added,
        )
    )


def decode(body: bytes) -> Entry:
    return _decoder.decode(body)


def registry_after(registry: OrgRegistry, entries: Sequence[Entry]) -> OrgRegistry:
    """``registry`` as it will be once ``entries`` are applied: itself when they register no
    organisation, else a copy with theirs registered in order (the commit labels its
    organisations by the first-seen order every replica shares)."""
    if not any(entry.new_orgs for entry in entries):
        return registry
    ahead = registry.copy()
    for entry in entries:
        ahead.register(entry.new_orgs, entry.orgs_added)
    return ahead
