"""Artifact state rows: where each voice note is (the read model the writer folds)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from exporter.artifacts import MINUTE_MS, ArtifactState, InflightKey, removed_inflight
from exporter.records import InflightFigures
from exporter.storage.rows import ARTIFACT_COLUMNS, INFLIGHT_REBUILD, artifact_state

_CHUNK = 500


class SqliteArtifacts:
    """Artifact state rows (written in the ingest transaction)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def load_states(self, artifact_ids: Sequence[str]) -> dict[str, ArtifactState]:
        """Current states of the given notes (absent ones are new)."""
        found: dict[str, ArtifactState] = {}
        for start in range(0, len(artifact_ids), _CHUNK):
            chunk = artifact_ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE artifact_id IN ({marks})", chunk
            )
            found.update((row[0], artifact_state(row)) for row in rows)
        return found

    def save_states(self, states: Iterable[ArtifactState]) -> None:
        self._conn.executemany(
            f"INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            # an upsert rewrites only changed index entries; REPLACE deletes and re-inserts all
            " ON CONFLICT (artifact_id) DO UPDATE SET org_id = excluded.org_id,"
            " status = excluded.status, current_stage = excluded.current_stage,"
            " last_event_type = excluded.last_event_type, last_event_ms = excluded.last_event_ms,"
            " first_event_ms = excluded.first_event_ms, failed_stage = excluded.failed_stage,"
            " error_code = excluded.error_code,"
            " awaiting_disambiguation = excluded.awaiting_disambiguation",
            [
                (s.artifact_id, s.org_id, s.status, s.current_stage, s.last_event_type,
                 s.last_event_ms, s.first_event_ms, s.failed_stage, s.error_code,
                 int(s.awaiting_disambiguation))
                for s in states
            ],
        )  # fmt: skip

    def add_inflight(self, delta: Mapping[InflightKey, int]) -> None:
        """Apply a commit's change to the in-flight table (same transaction as the states),
        dropping the rows it brings to zero."""
        rows = [(minute, stage, int(awaiting), n) for (minute, stage, awaiting), n in delta.items()]
        self._conn.executemany(
            "INSERT INTO inflight_minutes (minute_ms, stage, awaiting, notes)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (minute_ms, stage, awaiting)"
            " DO UPDATE SET notes = notes + excluded.notes",
            rows,
        )
        self._conn.executemany(
            "DELETE FROM inflight_minutes"
            " WHERE minute_ms = ? AND stage = ? AND awaiting = ? AND notes = 0",
            [row[:3] for row in rows if row[3] < 0],
        )

    def inflight_figures(self, stuck_before_ms: int) -> InflightFigures:
        """The in-flight gauges from the table; the notes of the cutoff's own minute are
        counted exactly from their rows (one minute of the last-event index)."""
        boundary = stuck_before_ms - stuck_before_ms % MINUTE_MS
        by_stage, awaiting, stuck = {}, 0, 0
        for stage, notes, waiting, idle in self._conn.execute(
            "SELECT stage, SUM(notes), SUM(notes * awaiting),"
            " SUM(CASE WHEN minute_ms < ? THEN notes ELSE 0 END)"
            " FROM inflight_minutes GROUP BY stage",
            (boundary,),
        ):
            by_stage[stage], awaiting, stuck = notes, awaiting + waiting, stuck + idle
        (edge,) = self._conn.execute(
            "SELECT COUNT(*) FROM artifacts WHERE last_event_ms >= ? AND last_event_ms < ?"
            " AND +status = 'in_flight'",  # +: by the last-event index, not every note's status
            (boundary, stuck_before_ms),
        ).fetchone()
        return InflightFigures(by_stage, awaiting, stuck + edge)

    def list_states(
        self,
        status: str,
        after: str | None,
        limit: int,
        idle_before_ms: int | None = None,
        *,
        org_id: str | None = None,
        stage: str | None = None,
    ) -> list[ArtifactState]:
        """Notes with ``status`` ordered by id, after the cursor ``after``; with
        ``idle_before_ms`` only those whose last event is strictly before it (stuck); with
        ``org_id`` or ``stage`` only that organisation's or current stage's."""
        sql = f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE status = ? AND artifact_id > ?"
        args: list[Any] = [status, after or ""]
        for column, value in (
            ("last_event_ms <", idle_before_ms),
            ("org_id =", org_id),
            ("current_stage =", stage),
        ):
            if value is not None:
                sql += f" AND {column} ?"
                args.append(value)
        rows = self._conn.execute(sql + " ORDER BY artifact_id LIMIT ?", (*args, limit))
        return [artifact_state(row) for row in rows]

    def delete_before(self, cutoff_ms: int, limit: int) -> int:
        """Delete at most ``limit`` notes whose last event is strictly before ``cutoff_ms``."""
        rows = self._conn.execute(
            "DELETE FROM artifacts WHERE artifact_id IN (SELECT artifact_id FROM artifacts"
            " WHERE last_event_ms < ? LIMIT ?) RETURNING status, current_stage, last_event_ms,"
            " awaiting_disambiguation",
            (cutoff_ms, limit),
        ).fetchall()
        self.add_inflight(removed_inflight(rows))
        if len(rows) < limit:  # none left before the cutoff: its whole minutes count none
            self._conn.execute(
                "DELETE FROM inflight_minutes WHERE minute_ms < ?",
                (cutoff_ms - cutoff_ms % MINUTE_MS,),
            )
        return len(rows)

    def rebuild_inflight(self) -> None:
        """Count the in-flight table afresh from the rows (after a writer that did not keep
        it: a replica of an earlier version beside this one during a rolling upgrade)."""
        self._conn.execute("DELETE FROM inflight_minutes")
        self._conn.execute(INFLIGHT_REBUILD)

    def count_before(self, cutoff_ms: int) -> int:
        """Notes whose last event is strictly before ``cutoff_ms`` (for dry runs)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM artifacts WHERE last_event_ms < ?", (cutoff_ms,)
        )
        return int(row.fetchone()[0])
