"""Durations derived from earlier events (docs/event-contract.md, precedence steps 3 and 4).

Given events without a duration, list which earlier start time each needs; given the
start times found (in the batch or in storage), fill the durations in and flag them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import msgspec

from exporter.catalog import ARTIFACT_RECEIVED, EVENT_TYPES, STARTED_TYPE, Kind
from exporter.model import DurationSource, Event

Lookup = tuple[str, str, int]
"""``(artifact_id, start event type, at_or_before_ms)``: the latest such start wanted."""

_FROM_RECEIVED = (Kind.ARTIFACT_SUCCESS, Kind.ARTIFACT_FAILURE)
_FROM_STARTED = (Kind.SUCCESS, Kind.FAILURE)


def lookup_for(event: Event) -> Lookup | None:
    """The start event this event's duration comes from, or None if it needs none (it has
    a duration, or had one dropped as over the maximum)."""
    if event.duration_source is not None or event.duration_ms is not None:
        return None
    if not event.artifact_id:
        return None
    kind = EVENT_TYPES[event.event_type].kind
    if kind in _FROM_RECEIVED:
        return (event.artifact_id, ARTIFACT_RECEIVED, event.ts_ms)
    if kind in _FROM_STARTED and event.stage in STARTED_TYPE:
        return (event.artifact_id, STARTED_TYPE[event.stage], event.ts_ms)
    return None


def starts_in_batch(events: Sequence[Event], lookups: Sequence[Lookup]) -> dict[Lookup, int]:
    """Latest start time per lookup among ``events`` (the batch being committed)."""
    wanted = {(artifact_id, start_type) for artifact_id, start_type, _ in lookups}
    times: dict[tuple[str, str], list[int]] = {}
    for event in events:
        key = (event.artifact_id or "", event.event_type)
        if key in wanted:
            times.setdefault(key, []).append(event.ts_ms)
    found = {}
    for lookup in lookups:
        candidates = [t for t in times.get(lookup[:2], ()) if t <= lookup[2]]
        if candidates:
            found[lookup] = max(candidates)
    return found


def apply_starts(
    events: Sequence[Event],
    starts: Mapping[Lookup, int],
    max_duration_ms: int,
    lookups: Sequence[Lookup | None] | None = None,
) -> tuple[list[Event], Counter[str]]:
    """Fill durations from found start times; events with no start stay without one.
    ``lookups``: each event's ``lookup_for`` when the caller has them already.

    A derived duration longer than ``max_duration_ms`` (equal is kept) is left unset and
    flagged ``over_max``; the second result counts those by the source they would have had.
    """
    result = []
    discarded: Counter[str] = Counter()
    for event, lookup in zip(events, lookups or [lookup_for(e) for e in events], strict=True):
        start = starts.get(lookup) if lookup else None
        if lookup is None or start is None:
            result.append(event)
            continue
        source = (
            DurationSource.RECEIVED_EVENT
            if lookup[1] == ARTIFACT_RECEIVED
            else DurationSource.STARTED_EVENT
        )
        duration = event.ts_ms - start
        if duration > max_duration_ms:
            discarded[source] += 1
            result.append(_timed(event, None, DurationSource.OVER_MAX))
        else:
            result.append(_timed(event, float(duration), source))
    return result, discarded


def _timed(event: Event, duration_ms: float | None, source: str) -> Event:
    """``event`` with ``duration_ms`` and ``duration_source`` set."""
    return msgspec.structs.replace(event, duration_ms=duration_ms, duration_source=source)
