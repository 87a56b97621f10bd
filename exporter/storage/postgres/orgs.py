"""Organisation display names, and the organisations voxmon has seen with them."""

from __future__ import annotations

from collections.abc import Sequence

from exporter.records import OrgEntry
from exporter.storage.postgres.connection import Connection


class PgOrgs:
    """The organisation name registry (``PUT /v1/orgs/{org_id}``)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def put_org_name(self, org_id: str, name: str, now_ms: int) -> None:
        self._conn.execute(
            "INSERT INTO org_names (org_id, name, updated_ms) VALUES (%s, %s, %s)"
            " ON CONFLICT (org_id) DO UPDATE SET"
            " name = excluded.name, updated_ms = excluded.updated_ms",
            (org_id, name, now_ms),
        )

    def org_names(self, org_ids: Sequence[str] | None = None) -> dict[str, str]:
        """Display names: all of them, or those of ``org_ids`` in one query."""
        if org_ids is None:
            rows = self._conn.execute("SELECT org_id, name FROM org_names ORDER BY org_id")
        elif not org_ids:
            return {}
        else:
            rows = self._conn.execute(
                "SELECT org_id, name FROM org_names WHERE org_id = ANY(%s)", (list(org_ids),)
            )
        return {str(org_id): str(name) for org_id, name in rows.fetchall()}

    def find_org(self, org_id: str) -> OrgEntry | None:
        """One organisation if it was seen in events or given a name, else None."""
        row = self._conn.execute(
            "SELECT %(id)s::text, (SELECT name FROM org_names WHERE org_id = %(id)s)"
            " WHERE EXISTS (SELECT 1 FROM org_series WHERE org_id = %(id)s)"
            " OR EXISTS (SELECT 1 FROM org_names WHERE org_id = %(id)s)",
            {"id": org_id},
        ).fetchone()
        return None if row is None else OrgEntry(str(row[0]), _text(row[1]))

    def list_orgs(self, after: str | None, limit: int) -> list[OrgEntry]:
        """Organisations seen in events or given a name, by id after the cursor ``after``."""
        rows = self._conn.execute(
            "SELECT ids.org_id, org_names.name FROM (SELECT org_id FROM org_series"
            " UNION SELECT org_id FROM org_names) AS ids"
            " LEFT JOIN org_names ON org_names.org_id = ids.org_id"
            " WHERE ids.org_id > %s ORDER BY ids.org_id LIMIT %s",
            (after or "", limit),
        )
        return [OrgEntry(str(org_id), _text(name)) for org_id, name in rows.fetchall()]


def _text(value: object) -> str | None:
    return None if value is None else str(value)
