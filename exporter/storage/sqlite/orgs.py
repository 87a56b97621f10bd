"""Organisation display names."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence


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
