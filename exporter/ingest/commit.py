"""One ingest commit, as it runs on the database thread: admit the requests' events (dedup,
retention horizon), derive durations, store the events with their tally, mark late hours
dirty, fold the notes' states and their in-flight counts and, on shared storage, read and
append the change journal (``exporter.live.journal``), all in one transaction."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from exporter import durations
from exporter.artifacts import fold, inflight_delta
from exporter.live import journal
from exporter.live.orgs import OrgRegistry
from exporter.live.tally import Tally, tally
from exporter.model import Event
from exporter.storage.base import Store
from exporter.timestamps import HOUR_MS

JOURNAL_KEEP_MS = 5 * 60_000
"""Journal entries are kept this long; a replica further behind reloads its live state."""


@dataclass(frozen=True, slots=True)
class CommitResult:
    """Outcome of one request's events: newly stored, already-known (duplicates), and the
    positions of events refused because retention already pruned what their snapshots
    are computed from (event time before ``events_from_ms``, ``Horizons.accept_from_ms``
    read in the commit's own transaction)."""

    accepted: int
    duplicates: int
    pruned: tuple[int, ...] = ()
    events_from_ms: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    results: list[CommitResult]
    tally: Tally
    discarded: Counter[str]
    """Derived durations left unset as over the maximum, by the source they would have had."""
    entry_id: int | None = None
    """This commit's journal entry (None: storage keeps no journal, or nothing was new)."""
    pending: list[tuple[int, journal.Entry]] = field(default_factory=list)
    """Other replicas' entries committed since the last one applied, in commit order."""


def commit(
    store: Store,
    batches: list[Sequence[Event]],
    now_ms: int,
    window_start_ms: int,
    orgs: OrgRegistry,
    prune_before_ms: int | None,
    max_duration_ms: int,
    journal_after: int | None,
    recount_inflight: bool = False,
) -> Outcome:
    """One transaction for several requests (runs on the database thread). With
    ``journal_after`` (shared storage) it reads the journal past that id first, so this
    commit's organisations are labelled in the first-seen order every replica shares. It
    recounts the in-flight table when asked or when it reads an entry of an earlier version
    (which stored notes without changing the table)."""
    with store.transaction():
        pending = _pending(store, journal_after)
        events_from = store.horizons.load().accept_from_ms
        results, fresh, discarded = _store_events(
            store, batches, events_from, max_duration_ms, now_ms
        )
        orgs = journal.registry_after(orgs, [entry for _, entry in pending])
        counted = tally(fresh, window_start_ms, orgs)
        counted.orgs_added = store.live.save_tally(counted)
        if prune_before_ms is not None:
            store.live.prune_minutes(prune_before_ms)
            store.live.prune_journal(now_ms - JOURNAL_KEEP_MS)
        store.snapshots.mark_dirty("hourly", _late_hours(fresh, now_ms))
        _advance_artifacts(store, fresh)
        if recount_inflight or any(entry.inflight for _, entry in pending):
            store.artifacts.rebuild_inflight()
        entry_id = None
        if journal_after is not None and fresh:
            entry_id = store.live.journal(journal.encode(counted), now_ms)
    return Outcome(results, counted, discarded, entry_id, pending)


def _pending(store: Store, after: int | None) -> list[tuple[int, journal.Entry]]:
    if after is None:
        return []
    _, rows = store.live.journal_since(after)  # all committed: this transaction holds the lock
    return [(entry_id, journal.decode(body)) for entry_id, body in rows]


def _store_events(
    store: Store,
    batches: list[Sequence[Event]],
    events_from: int,
    max_duration_ms: int,
    now_ms: int,
) -> tuple[list[CommitResult], list[Event], Counter[str]]:
    """Admit, derive durations and insert; each request's result, the events stored and
    the derived durations discarded. Optimistic: the events are admitted as if none were
    stored yet and inserted only if so (the unique key checks, in the insert itself);
    otherwise the commit starts over from the stored ids. Either way the outcome is what
    looking the ids up first gives."""
    results, fresh = _admit(batches, events_from, set())
    fresh, discarded = _derive_durations(store, fresh, max_duration_ms)
    if store.events.insert_new(fresh, now_ms):
        return results, fresh, discarded
    stored = store.events.existing_ids([event.event_id for batch in batches for event in batch])
    results, fresh = _admit(batches, events_from, stored)
    fresh, discarded = _derive_durations(store, fresh, max_duration_ms)
    store.events.insert(fresh, now_ms)
    return results, fresh, discarded


def _admit(
    batches: list[Sequence[Event]], events_from: int, seen: set[str]
) -> tuple[list[CommitResult], list[Event]]:
    """Each request's result, and the events to store: not in ``seen`` (the ids stored),
    not duplicated earlier in this commit, and not before ``events_from`` (their hour can
    no longer be rolled up: refused, never forgotten). Adds the admitted ids to ``seen``."""
    results: list[CommitResult] = []
    fresh: list[Event] = []
    for batch in batches:
        before, pruned = len(fresh), []
        for position, event in enumerate(batch):
            if event.ts_ms < events_from:
                pruned.append(position)
            elif event.event_id not in seen:
                seen.add(event.event_id)
                fresh.append(event)
        accepted = len(fresh) - before
        duplicates = len(batch) - accepted - len(pruned)
        results.append(CommitResult(accepted, duplicates, tuple(pruned), events_from))
    return results, fresh


def _advance_artifacts(store: Store, events: list[Event]) -> None:
    """Fold the events into the artifact read model and the in-flight counts (same
    transaction: the counts always equal the in-flight rows)."""
    touched = sorted({e.artifact_id for e in events if e.artifact_id})
    if not touched:
        return
    before = store.artifacts.load_states(touched)
    changed = fold(before, events)
    store.artifacts.save_states(changed.values())
    store.artifacts.add_inflight(inflight_delta(before, changed))


def _late_hours(events: Sequence[Event], now_ms: int) -> set[int]:
    """Starts of already-closed hours these events fall in. The rollup re-aggregates them
    (a mark for an hour not yet aggregated is harmless: it is aggregated anyway)."""
    current = now_ms - now_ms % HOUR_MS
    return {e.ts_ms - e.ts_ms % HOUR_MS for e in events if e.ts_ms < current}


def _derive_durations(
    store: Store, events: list[Event], max_duration_ms: int
) -> tuple[list[Event], Counter[str]]:
    per_event = [durations.lookup_for(event) for event in events]
    lookups = [lookup for lookup in per_event if lookup]
    if not lookups:
        return events, Counter()
    found = durations.starts_in_batch(events, lookups)
    for lookup, stored in store.events.latest_starts(lookups).items():
        if stored > found.get(lookup, stored - 1):
            found[lookup] = stored
    return durations.apply_starts(events, found, max_duration_ms, per_event)
