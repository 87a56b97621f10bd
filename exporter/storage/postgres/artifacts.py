"""Artifact state rows: where each voice note is (the read model the writer folds)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from exporter.artifacts import ArtifactState
from exporter.storage.postgres.connection import Connection
from exporter.storage.rows import ARTIFACT_COLUMNS, artifact_state


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

    def in_flight(self) -> Iterator[tuple[str, str | None, int, bool]]:
        """Every note in flight as ``(artifact_id, current_stage, last_event_ms,
        awaiting_disambiguation)``, streamed through a server-side cursor (inside the
        caller's transaction; a restore holds no list)."""
        with self._conn.cursor(name="voxmon_in_flight") as cursor:
            cursor.itersize = 20_000
            cursor.execute(
                "SELECT artifact_id, current_stage, last_event_ms, awaiting_disambiguation"
                " FROM artifacts WHERE status = 'in_flight'"
            )
            for artifact_id, stage, last_ms, awaiting in cursor:
                yield str(artifact_id), stage, int(last_ms), bool(awaiting)

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
        return self._conn.execute(
            "DELETE FROM artifacts WHERE artifact_id IN (SELECT artifact_id FROM artifacts"
            " WHERE last_event_ms < %s LIMIT %s)",
            (cutoff_ms, limit),
        ).rowcount

    def count_before(self, cutoff_ms: int) -> int:
        """Notes whose last event is strictly before ``cutoff_ms`` (for dry runs)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM artifacts WHERE last_event_ms < %s", (cutoff_ms,)
        ).fetchone()
        return int(row[0]) if row else 0
