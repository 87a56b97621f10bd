"""Artifact state rows: where each voice note is (the read model the writer folds)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from exporter.artifacts import ArtifactState
from exporter.storage.rows import ARTIFACT_COLUMNS, artifact_state

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

    def in_flight(self) -> Iterator[tuple[str, str | None, int, bool]]:
        """Every note in flight as ``(artifact_id, current_stage, last_event_ms,
        awaiting_disambiguation)``, streamed from the table (a restore holds no list)."""
        rows = self._conn.execute(
            "SELECT artifact_id, current_stage, last_event_ms, awaiting_disambiguation"
            " FROM artifacts WHERE status = 'in_flight'"
        )
        for artifact_id, stage, last_ms, awaiting in rows:
            yield artifact_id, stage, last_ms, bool(awaiting)

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
        return self._conn.execute(
            "DELETE FROM artifacts WHERE artifact_id IN (SELECT artifact_id FROM artifacts"
            " WHERE last_event_ms < ? LIMIT ?)",
            (cutoff_ms, limit),
        ).rowcount

    def count_before(self, cutoff_ms: int) -> int:
        """Notes whose last event is strictly before ``cutoff_ms`` (for dry runs)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM artifacts WHERE last_event_ms < ?", (cutoff_ms,)
        )
        return int(row.fetchone()[0])
