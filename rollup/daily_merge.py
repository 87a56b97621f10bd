"""The daily job's merge of a day's hourly rows per scope, done while they are read: each
scope is merged as soon as its rows are whole, so on PostgreSQL, which hands the rows over
scope after scope while it reads the next (``read_ahead.read_scope_runs``), most of the
merging overlaps the read (decisions/snapshot-compression.md)."""

from __future__ import annotations

from datetime import datetime
from operator import attrgetter
from typing import Any

from exporter.catalog import PROCESSING_STAGES
from exporter.records import PartsRow, SnapshotRow
from exporter.timestamps import datetime_to_ms
from rollup import merger
from rollup.codec import decode_stored, encode_stored, merge_stored
from rollup.packed import encode

MERGE_SCOPES = merger.GROUPS_PER_BATCH // (len(PROCESSING_STAGES) + 1)
"""Whole scopes merged at once while reading (five digests each: one batch of the
merger's)."""


class DailyMerge:
    """A day's hourly rows as they are read (``TakeParts``): each scope's parts decoded in
    start order and, as soon as ``MERGE_SCOPES`` scopes are whole, merged in their stored
    form (no per-bucket objects) while the rest is read; the hours with a platform row."""

    def __init__(self, day: datetime) -> None:
        self._start = datetime_to_ms(day)
        self._reading: dict[str, list[Any]] = {"": []}  # the platform row even on a quiet day
        self._merged: set[str] = set()
        self.daily: list[SnapshotRow] = []
        self.platform_starts: set[int] = set()

    def take(self, rows: list[PartsRow]) -> None:
        for start, scope, parts in rows:
            if scope in self._merged:
                raise ValueError(
                    f"hourly rows of scope {scope!r} came after it was merged: the read"
                    " did not keep each scope's rows together"
                )
            self._reading.setdefault(scope, []).append(decode_stored(parts))
            if scope == "":
                self.platform_starts.add(start)
        if rows:  # every scope but the last row's is whole (the database's order, not str's)
            whole = sorted(scope for scope in self._reading if scope != rows[-1][1])
            if len(whole) >= MERGE_SCOPES:
                self._merge(whole)

    def daily_rows(self) -> list[SnapshotRow]:
        """The day's rows, one per scope in scope order, once every row has been taken."""
        self._merge(sorted(self._reading))
        return sorted(self.daily, key=attrgetter("scope"))

    def _merge(self, scopes: list[str]) -> None:
        merged = merge_stored([self._reading.pop(scope) for scope in scopes])
        self._merged.update(scopes)
        self.daily += [
            SnapshotRow("daily", self._start, scope, p.artifacts_received, p.artifacts_completed,
                        p.artifacts_failed, p.ai_cost_usd, encode_stored(p), encode(p.end_to_end))
            for scope, p in zip(scopes, merged, strict=True)
        ]  # fmt: skip
