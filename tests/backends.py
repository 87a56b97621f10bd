"""Both storage backends for tests: ``BACKENDS`` to parametrize the ``database_url``
fixture with, fresh PostgreSQL databases cloned from a template migrated once per session,
and backend-neutral access to a test's stored rows. PostgreSQL runs at 127.0.0.1:5432
(trust authentication, user postgres); without it these tests skip, and fail when CI is set."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from exporter.storage.factory import ClosableStore, open_store
from exporter.storage.location import locate
from exporter.storage.postgres.connection import connect

SERVER = "postgresql://postgres@127.0.0.1:5432/"
BACKENDS = ("sqlite", "postgres")
both = pytest.mark.both_backends
"""Runs a test (or every test of a module, as ``pytestmark``) once per backend where it
takes ``database_url`` (directly or through ``start_app``); others run once, on SQLite."""
sqlite_only = pytest.mark.sqlite_only
"""In a ``both`` module: a test that reaches into the SQLite file (or its connection)."""

_template: list[str] = []


def require_postgres() -> None:
    """Skip without a reachable server; fail instead when CI is set."""
    try:
        with psycopg.connect(SERVER + "postgres", connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        message = f"PostgreSQL at {SERVER} is not reachable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _admin(sql: str) -> None:
    with psycopg.connect(SERVER + "postgres", autocommit=True) as conn:
        conn.execute(sql)


def template() -> str:
    """The session's template database, created and migrated on first use."""
    if not _template:
        name = f"voxmon_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        _admin(f"CREATE DATABASE {name}")
        connect(SERVER + name).close()
        _template.append(name)
    return _template[0]


@contextmanager
def empty_database(options: str = "") -> Iterator[str]:
    """The URL of a new database without voxmon's schema (``options`` of CREATE DATABASE,
    such as another encoding), dropped afterwards."""
    require_postgres()
    name = f"voxmon_test_{uuid.uuid4().hex[:12]}"
    _admin(f"CREATE DATABASE {name} {options}")
    try:
        yield SERVER + name
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def drop_template() -> None:
    for name in _template:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _template.clear()


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new migrated database of its own, dropped afterwards."""
    require_postgres()
    with empty_database(f"TEMPLATE {template()}") as url:
        yield url


def store_for(database_url: str, tmp_path: Path) -> ClosableStore:
    """A store on the test's database (``""``: the SQLite file ``make_settings`` uses)."""
    location = locate(database_url, str(tmp_path / "voxmon.db"))
    if location.kind == "sqlite":
        from tests.tools import open_store as open_sqlite

        return open_sqlite(Path(location.target))
    return open_store(location)


def rows(database_url: str, tmp_path: Path, sql: str, *args: object) -> list[dict[str, Any]]:
    """Rows of a plain query (``?`` placeholders) as dicts, on either backend."""
    location = locate(database_url, str(tmp_path / "voxmon.db"))
    if location.kind == "sqlite":
        conn = sqlite3.connect(location.target)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(row) for row in conn.execute(sql, args)]
        finally:
            conn.close()
    with psycopg.connect(location.target, row_factory=dict_row) as pg:
        if not args:  # no parameters: a literal % (LIKE) stays as it is
            return list(pg.execute(sql).fetchall())
        return list(pg.execute(sql.replace("?", "%s"), args).fetchall())


def script(database_url: str, tmp_path: Path, sql: str) -> None:
    """Run statements that return nothing (DDL, a migration's text) and commit them."""
    location = locate(database_url, str(tmp_path / "voxmon.db"))
    if location.kind == "sqlite":
        conn = sqlite3.connect(location.target, isolation_level=None)
        try:
            conn.executescript(sql)
        finally:
            conn.close()
        return
    with psycopg.connect(location.target) as pg:
        pg.execute(sql.encode())
