"""Artifact state rows: where each voice note is (the read model the writer folds)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from exporter.artifacts import MINUTE_MS, ArtifactState, InflightKey, removed_inflight
from exporter.records import InflightFigures
from exporter.storage.postgres.connection import Connection
from exporter.storage.rows import ARTIFACT_COLUMNS, INFLIGHT_REBUILD, artifact_state


class PgArtifacts:
    """Artifact state rows (written in the ingest transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def load_states(self, artifact_ids: Sequence[str]) -> dict[str, ArtifactState]:
        """Current states of the given notes (absent ones are new)."""
        if not artifact_ids:
            return {}
        rows = self._conn.execute(
            f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE artifact_id = ANY(%s)",
            (list(artifact_ids),),
        )
        return {str(row[0]): artifact_state(row) for row in rows.fetchall()}

    def save_states(self, states: Iterable[ArtifactState]) -> None:
        rows = [
            (s.artifact_id, s.org_id, s.status, s.current_stage, s.last_event_type,
             s.last_event_ms, s.first_event_ms, s.failed_stage, s.error_code,
             s.awaiting_disambiguation)
            for s in states
        ]  # fmt: skip
        if not rows:
            return
        with self._conn.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO artifacts ({ARTIFACT_COLUMNS}) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (artifact_id) DO UPDATE SET org_id = excluded.org_id,"
                " status = excluded.status, current_stage = excluded.current_stage,"
                " last_event_type = excluded.last_event_type,"
                " last_event_ms = excluded.last_event_ms,"
                " first_event_ms = excluded.first_event_ms, failed_stage = excluded.failed_stage,"
                " error_code = excluded.error_code,"
                " awaiting_disambiguation = excluded.awaiting_disambiguation",
                rows,
            )

    def add_inflight(self, delta: Mapping[InflightKey, int]) -> None:
        """Apply a commit's change to the in-flight table (same transaction as the states),
        dropping the rows it brings to zero."""
        rows = [(minute, stage, awaiting, n) for (minute, stage, awaiting), n in delta.items()]
        if not rows:
            return
        with self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO inflight_minutes (minute_ms, stage, awaiting, notes)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (minute_ms, stage, awaiting)"
                " DO UPDATE SET notes = inflight_minutes.notes + excluded.notes",
                rows,
            )
            gone = [row[:3] for row in rows if row[3] < 0]
            if gone:
                cursor.executemany(
                    "DELETE FROM inflight_minutes WHERE minute_ms = %s AND stage = %s"
                    " AND awaiting = %s AND notes = 0",
                    gone,
                )

    def inflight_figures(self, stuck_before_ms: int) -> InflightFigures:
        """The in-flight gauges from the table; the notes of the cutoff's own minute are
        counted exactly from their rows (one minute of the last-event index)."""
        boundary = stuck_before_ms - stuck_before_ms % MINUTE_MS
        by_stage, awaiting, stuck = {}, 0, 0
        for stage, notes, waiting, idle in self._conn.execute(
            "SELECT stage, SUM(notes), SUM(CASE WHEN awaiting THEN notes ELSE 0 END),"
            " SUM(CASE WHEN minute_ms < %s THEN notes ELSE 0 END)"
            " FROM inflight_minutes GROUP BY stage",
            (boundary,),
        ).fetchall():
            by_stage[str(stage)] = int(notes)
            awaiting, stuck = awaiting + int(waiting), stuck + int(idle)
        row = self._conn.execute(
            "SELECT COUNT(*) FROM artifacts WHERE last_event_ms >= %s AND last_event_ms < %s"
            " AND status = 'in_flight'",
            (boundary, stuck_before_ms),
        ).fetchone()
        return InflightFigures(by_stage, awaiting, stuck + (int(row[0]) if row else 0))

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
        """Notes with ``status`` ordered by id after the cursor ``after``; optionally only
        those idle since before ``idle_before_ms``, of ``org_id`` or at ``stage``."""
        sql = f"SELECT {ARTIFACT_COLUMNS} FROM artifacts WHERE status = %s AND artifact_id > %s"
        args: list[Any] = [status, after or ""]
        for column, value in (
            ("last_event_ms <", idle_before_ms),
            ("org_id =", org_id),
            ("current_stage =", stage),
        ):
            if value is not None:
                sql += f" AND {column} %s"
                args.append(value)
        rows = self._conn.execute(sql + " ORDER BY artifact_id LIMIT %s", (*args, limit))
        return [artifact_state(row) for row in rows.fetchall()]

    def delete_before(self, cutoff_ms: int, limit: int) -> int:
        """Delete at most ``limit`` notes whose last event is strictly before ``cutoff_ms``."""
        rows = self._conn.execute(
            "DELETE FROM artifacts WHERE artifact_id IN (SELECT artifact_id FROM artifacts"
            " WHERE last_event_ms < %s LIMIT %s) RETURNING status, current_stage,"
            " last_event_ms, awaiting_disambiguation",
            (cutoff_ms, limit),
        ).fetchall()
        self.add_inflight(removed_inflight(rows))
        if len(rows) < limit:  # none left before the cutoff: its whole minutes count none
            self._conn.execute(
                "DELETE FROM inflight_minutes WHERE minute_ms < %s",
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
            "SELECT COUNT(*) FROM artifacts WHERE last_event_ms < %s", (cutoff_ms,)
        ).fetchone()
        return int(row[0]) if row else 0
