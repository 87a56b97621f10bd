"""Shared fixtures: factories for events and settings, a fake clock, a live app on loopback."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from exporter.app import create_app
from exporter.http import server as http_server
from exporter.http.context import REGISTRY
from exporter.settings import Settings
from exporter.timestamps import datetime_to_ms
from tests.backends import BACKENDS, drop_template, fresh_database
from tests.tools import FakeClock

T0 = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
"""Fixed wall time the fake clock starts at (a Saturday)."""
T0_MS = datetime_to_ms(T0)


def T(hour: int, minute: int, second: int = 0) -> str:
    """An RFC 3339 wall time on T0's day."""
    return f"2026-11-28T{hour:02d}:{minute:02d}:{second:02d}Z"


_ids = itertools.count(1)


def make_event(**overrides: Any) -> dict[str, Any]:
    """A valid wire event (``artifact_received`` at T0) with fields overridden; pass a
    field as None to drop it."""
    event: dict[str, Any] = {
        "event_id": f"evt-{next(_ids)}",
        "event_type": "artifact_received",
        "timestamp": "2026-11-28T10:00:00Z",
        "artifact_id": "art-1",
        "org_id": "org-a",
    }
    event.update(overrides)
    return {key: value for key, value in event.items() if value is not None}


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings on a database file under ``tmp_path``; overrides go through validation."""
    values: dict[str, Any] = {"db_path": str(tmp_path / "voxmon.db")}
    values.update(overrides)
    return Settings.load(None, {}, values)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


AppFactory = Callable[..., Any]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures the multi-replica tests checked (tests/test_replicas.py)."""
    from tests.replicas import FIGURES

    if FIGURES:
        terminalreporter.section("replica figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``both_backends`` that use ``database_url`` run on SQLite and PostgreSQL,
    except those also marked ``sqlite_only`` (they reach into the SQLite file itself)."""
    node = metafunc.definition
    marked = node.get_closest_marker("both_backends") and not node.get_closest_marker("sqlite_only")
    if marked and "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", BACKENDS, indirect=True)


@pytest.fixture(scope="session", autouse=True)
def _postgres_template() -> Iterator[None]:
    """Drop the session's PostgreSQL template database (made on first use) at the end."""
    yield
    drop_template()


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """``""`` (SQLite, the default) or, parametrized with ``tests.backends.both``, the URL of a
    fresh PostgreSQL database of the test's own."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield ""
        return
    with fresh_database() as url:
        yield url


@pytest.fixture
async def start_app(
    tmp_path: Path, clock: FakeClock, database_url: str
) -> AsyncIterator[Callable[..., Any]]:
    """``await start_app(**settings_overrides)`` -> a ``TestClient`` for a real app on
    loopback over a real SQLite file (or a fresh PostgreSQL database where
    ``database_url`` is parametrized with ``tests.backends.both``); its scheduler fires
    only with ``run_scheduler=True``.
    Call ``await client.close()`` to stop it early (a restart is a second ``start_app``
    with the same database)."""
    clients: list[TestClient[Any, Any]] = []

    async def start(run_scheduler: bool = False, **overrides: Any) -> TestClient[Any, Any]:
        settings = make_settings(tmp_path, **({"database_url": database_url} | overrides))
        app = create_app(
            settings, clock=clock, registry=CollectorRegistry(), run_scheduler=run_scheduler
        )
        limits = http_server.Limits.of(settings)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(**http_server.runner_options(limits))
        assert server.runner is not None
        http_server.install(server.runner, limits, clock, app[REGISTRY])
        client: TestClient[Any, Any] = TestClient(server)
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()
