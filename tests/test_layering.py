"""Architecture rules from the style guide, checked on the parsed source."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE = [
    "exporter/catalog.py",
    "exporter/model.py",
    "exporter/validation.py",
    "exporter/timestamps.py",
    "exporter/windows.py",
    "exporter/tally.py",
    "exporter/durations.py",
    "exporter/live.py",
    "exporter/orgs.py",
    "exporter/body.py",
    "exporter/artifacts.py",
    "exporter/params.py",
    "exporter/cron.py",
    *sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "rollup").glob("*.py")
        if p.name in ("digest.py", "schedule.py", "retention.py", "parts.py", "snapshot.py")
    ),
]
FORBIDDEN_IN_PURE = {"aiohttp", "aiosqlite", "asyncio", "time", "sqlite3"}
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA)\b")


def sources() -> list[Path]:
    return sorted([*ROOT.glob("exporter/**/*.py"), *ROOT.glob("rollup/**/*.py")])


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_layering_pure_modules_do_no_io(module: str) -> None:
    assert imported_modules(ROOT / module) & FORBIDDEN_IN_PURE == set()


def test_layering_sql_only_in_storage() -> None:
    offenders = []
    for path in sources():
        if "storage" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and SQL.match(node.value):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_layering_only_clock_reads_time() -> None:
    readers = []
    for path in sources():
        text = path.read_text()
        if "time" in imported_modules(path) or re.search(r"datetime\.now\(|\.utcnow\(", text):
            readers.append(str(path.relative_to(ROOT)))
    assert readers == ["exporter/clock.py"]


def test_layering_rollup_imported_only_by_composition_root() -> None:
    importers = [
        str(path.relative_to(ROOT))
        for path in ROOT.glob("exporter/**/*.py")
        if "rollup" in imported_modules(path)
    ]
    assert set(importers) <= {"exporter/app.py", "exporter/cli.py"}
