"""Organisation display names, and the organisations voxmon has seen with them."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from exporter.records import OrgEntry


class SqliteOrgs:
    """The organisation name registry (``PUT /v1/orgs/{org_id}``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def put_org_name(self, org_id: str, name: str, now_ms: int) -> None:
        self._conn.execute(
            "INSERT INTO org_names (org_id, name, updated_ms) VALUES (?, ?, ?)"
            " ON CONFLICT (org_id) DO UPDATE SET"
            " name = excluded.name, updated_ms = excluded.updated_ms",
            (org_id, name, now_ms),
        )

    def org_names(self, org_ids: Sequence[str] | None = None) -> dict[str, str]:
        """Display names: all of them, or those of ``org_ids`` in one query."""
        if org_ids is None:
            return dict(self._conn.execute("SELECT org_id, name FROM org_names ORDER BY org_id"))
        if not org_ids:
            return {}
        rows = self._conn.execute(
            "SELECT org_id, name FROM org_names WHERE org_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(org_ids)),),
        )
        return dict(rows)

    def find_org(self, org_id: str) -> OrgEntry | None:
        """One organisation if it was seen in events or given a name, else None."""
        row = self._conn.execute(
            "SELECT ?1, (SELECT name FROM org_names WHERE org_id = ?1)"
            " WHERE EXISTS (SELECT 1 FROM org_series WHERE org_id = ?1)"
            " OR EXISTS (SELECT 1 FROM org_names WHERE org_id = ?1)",
            (org_id,),
        ).fetchone()
        return None if row is None else OrgEntry(row[0], row[1])

    def list_orgs(self, after: str | None, limit: int) -> list[OrgEntry]:
        """Organisations seen in events (first-seen registry) or given a name, by id after
        the cursor ``after``, each with its name or None."""
        rows = self._conn.execute(
            "SELECT ids.org_id, org_names.name FROM (SELECT org_id FROM org_series"
            " UNION SELECT org_id FROM org_names) AS ids"
            " LEFT JOIN org_names ON org_names.org_id = ids.org_id"
            " WHERE ids.org_id > ? ORDER BY ids.org_id LIMIT ?",
            (after or "", limit),
        )
        return [OrgEntry(org_id, name) for org_id, name in rows]
