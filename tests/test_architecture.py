"""The architecture rules (``tests/architecture.py``) hold on voxmon's source tree, and the
check proves itself: each violation planted in a copy of the tree is reported by name."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.architecture import LAYERS, check, layer_of
from tests.imports import PACKAGES, sources

ROOT = Path(__file__).resolve().parent.parent
FUTURE = "from __future__ import annotations\n"


def copy_tree(root: Path, into: Path) -> Path:
    """The sources and test modules of ``root`` under ``into`` (nothing else is read)."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for package in PACKAGES:
        shutil.copytree(root / package, into / package, ignore=skip)
    (into / "tests").mkdir()
    for path in (root / "tests").glob("test_*.py"):
        shutil.copy(path, into / "tests" / path.name)
    return into


def after_future(root: Path, module: str, *lines: str) -> None:
    """Insert ``lines`` as top-level statements of ``module``, after its future import."""
    path = root / module
    text = path.read_text()
    assert FUTURE in text, module
    path.write_text(text.replace(FUTURE, FUTURE + "".join(f"{line}\n" for line in lines), 1))


def append(root: Path, module: str, text: str) -> None:
    path = root / module
    path.write_text(path.read_text() + text)


def function_of(lines: int) -> str:
    """A module-level function of exactly ``lines`` lines, ``def`` line included."""
    body = "".join(f"    x{i} = {i}\n" for i in range(lines - 2))
    return f"\n\ndef planted() -> int:\n{body}    return 0\n"


def pad_to(root: Path, module: str, lines: int) -> None:
    path = root / module
    have = len(path.read_text().splitlines())
    append(root, module, "".join(f"# line {n}\n" for n in range(have + 1, lines + 1)))


PLANTED: dict[str, tuple[str, ...]] = {
    # name: (module, the violation reported)
    "asyncio_in_aggregate": (
        "rollup/aggregate.py",
        "pure module rollup/aggregate.py imports asyncio",
    ),
    "aiohttp_in_codec": ("rollup/codec.py", "pure module rollup/codec.py imports aiohttp.web"),
    "sqlite3_via_storage_in_validation": (
        "exporter/validation.py",
        "pure module exporter/validation.py imports sqlite3 via exporter.storage.sqlite.connection",
        "outward import: exporter/validation.py (pure) imports exporter.storage.sqlite.connection"
        " (storage); pure may import pure",
    ),
    "prometheus_client_in_tally": (
        "exporter/live/tally.py",
        "pure module exporter/live/tally.py imports prometheus_client",
    ),
    "windows_live_cycle": (
        "exporter/live/windows.py",
        "import cycle: exporter.live.state -> exporter.live.windows -> exporter.live.state",
    ),
    "rollup_imports_app": (
        "rollup/jobs.py",
        "outward import: rollup/jobs.py (glue) imports exporter.app (wiring);"
        " glue may import glue, pure, storage",
    ),
    "type_checking_aiohttp_in_digest": (
        "rollup/digest.py",
        "pure module rollup/digest.py imports aiohttp",
    ),
    "sql_in_http_handler": (
        "exporter/http/history.py",
        "SQL outside exporter/storage/: exporter/http/history.py:6 'SELECT count(*) FROM'",
    ),
    "sql_fstring_in_http_handler": (
        "exporter/http/orgs.py",
        "SQL outside exporter/storage/: exporter/http/orgs.py:6 'DELETE FROM'",
    ),
    "unclassified_module": (
        "exporter/planted.py",
        "unclassified module exporter/planted.py: in no layer"
        " (add it to tests/architecture.py LAYERS)",
    ),
    "client_imports_exporter": (
        "client/voxmon_client/wire.py",
        "outward import: client/voxmon_client/wire.py (client) imports exporter.catalog (pure);"
        " client may import client",
    ),
    "module_of_301_lines": (
        "exporter/errors.py",
        "module too long: exporter/errors.py has 301 lines (max 300)",
    ),
    "function_of_41_lines": (
        "rollup/windows.py",
        "function too long: rollup/windows.py planted has 41 lines (max 40)",
    ),
    "relative_import_of_storage_in_tally": (
        "exporter/live/tally.py",
        "pure module exporter/live/tally.py imports sqlite3 via exporter.storage.sqlite.schema",
    ),
    "handler_imports_rollup": (
        "exporter/http/rollups.py",
        "rollup imported outside the wiring: exporter/http/rollups.py imports rollup.jobs",
    ),
    "clock_read_in_writer": (
        "exporter/ingest/writer.py",
        "reads the clock: exporter/ingest/writer.py imports time (take a Clock or now instead)",
    ),
    "psycopg_in_storage_health": (
        "exporter/health.py",
        "driver outside its backend: exporter/health.py imports psycopg"
        " (only exporter/storage/postgres/**)",
    ),
    "test_imports_test": (
        "tests/test_schedule.py",
        "test module imports a test module: tests/test_schedule.py imports tests.test_daemon",
    ),
}


def plant(root: Path, name: str) -> None:
    """Make the violation ``name`` of ``PLANTED`` in the tree at ``root``."""
    module = PLANTED[name][0]
    match name:
        case "asyncio_in_aggregate":
            after_future(root, module, "import asyncio")
        case "aiohttp_in_codec":
            after_future(root, module, "from aiohttp import web")
        case "sqlite3_via_storage_in_validation":
            after_future(root, module, "from exporter.storage.sqlite import connection")
        case "prometheus_client_in_tally":
            after_future(root, module, "import prometheus_client")
        case "windows_live_cycle":  # a function-level import closes the loop
            append(root, module, "\n\ndef planted() -> None:\n    from . import state\n")
        case "rollup_imports_app":
            after_future(root, module, "from exporter.app import create_app")
        case "type_checking_aiohttp_in_digest":
            lines = ("from typing import TYPE_CHECKING", "if TYPE_CHECKING:", "    import aiohttp")
            after_future(root, module, *lines)
        case "sql_in_http_handler":
            after_future(root, module, 'QUERY = "SELECT count(*) FROM events"')
        case "sql_fstring_in_http_handler":
            after_future(root, module, 'TABLE = "orgs"', 'QUERY = f"DELETE FROM {TABLE}"')
        case "unclassified_module":
            (root / module).write_text('"""Planted."""\n')
        case "client_imports_exporter":
            after_future(root, module, "from exporter.catalog import EVENT_TYPES")
        case "module_of_301_lines":
            pad_to(root, module, 301)
        case "function_of_41_lines":
            append(root, module, function_of(41))
        case "relative_import_of_storage_in_tally":
            after_future(root, module, "from ..storage.sqlite import schema")
        case "handler_imports_rollup":
            after_future(root, module, "from rollup import jobs")
        case "clock_read_in_writer":
            after_future(root, module, "import time")
        case "psycopg_in_storage_health":
            after_future(root, module, "import psycopg")
        case "test_imports_test":
            after_future(root, module, "from tests.test_daemon import voxmon")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One copy of the tree for every planted violation; each test restores what it changed."""
    return copy_tree(ROOT, tmp_path_factory.mktemp("tree"))


@contextmanager
def restored(root: Path, *modules: str) -> Iterator[None]:
    """Put ``modules`` back as they were (or remove them) on the way out."""
    before = {m: (root / m).read_text() if (root / m).exists() else None for m in modules}
    try:
        yield
    finally:
        for module, text in before.items():
            if text is None:
                (root / module).unlink()
            else:
                (root / module).write_text(text)


def test_architecture_holds_on_voxmon() -> None:
    assert check(ROOT) == []


def test_architecture_every_module_is_in_exactly_one_layer() -> None:
    modules = [path.relative_to(ROOT).as_posix() for path in sources(ROOT)]
    assert len(modules) > 90
    assert [m for m in modules if layer_of(m) is None] == []
    assert set(LAYERS) == {"pure", "storage", "glue", "demo", "wiring", "client"}


def test_architecture_copy_of_the_tree_is_clean(tree: Path) -> None:
    """The baseline for the planted violations: copying alone reports nothing."""
    assert check(tree) == []


def test_architecture_limits_are_inclusive(tree: Path) -> None:
    with restored(tree, "exporter/errors.py", "rollup/windows.py"):
        pad_to(tree, "exporter/errors.py", 300)
        append(tree, "rollup/windows.py", function_of(40))
        assert check(tree) == []


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_architecture_reports_a_planted_violation(tree: Path, name: str) -> None:
    with restored(tree, PLANTED[name][0]):
        plant(tree, name)
        violations = check(tree)
    for expected in PLANTED[name][1:]:
        assert expected in violations
    assert check(tree) == []
