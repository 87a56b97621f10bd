"""voxmon's architecture as data, and ``check(root)``: the rules every source tree must keep.

Layers point inward: pure core <- storage <- glue <- wiring (the daemon), with the client
distribution and the demo beside them. Every module under exporter/, rollup/ and client/ is
classified here; an unclassified one is a violation, so a new file is placed on purpose.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.imports import Module, import_graph, shortest_path, sources

LAYERS: dict[str, tuple[str, ...]] = {
    # No I/O, no clock, no threads: values in, values out.
    "pure": (
        "exporter/__init__.py",
        "exporter/addresses.py",
        "exporter/artifacts.py",
        "exporter/catalog.py",
        "exporter/cron.py",
        "exporter/durations.py",
        "exporter/errors.py",
        "exporter/jobs.py",
        "exporter/metadata.py",
        "exporter/model.py",
        "exporter/records.py",
        "exporter/reports.py",
        "exporter/rejections.py",
        "exporter/timestamps.py",
        "exporter/tokens.py",
        "exporter/validation.py",
        "exporter/live/__init__.py",
        "exporter/live/families.py",
        "exporter/live/journal.py",
        "exporter/live/latency.py",
        "exporter/live/orgs.py",
        "exporter/live/state.py",
        "exporter/live/tally.py",
        "exporter/live/windows.py",
        "exporter/demo/shape.py",
        "exporter/demo/traffic.py",
        "rollup/__init__.py",
        "rollup/aggregate.py",
        "rollup/buckets.py",
        "rollup/codec.py",
        "rollup/daily_merge.py",
        "rollup/digest.py",
        "rollup/guard.py",
        "rollup/live_latency.py",
        "rollup/merger.py",
        "rollup/packed.py",
        "rollup/parts.py",
        "rollup/reports.py",
        "rollup/schedule.py",
        "rollup/summary.py",
        "rollup/windows.py",
    ),
    # All SQL, behind the interfaces in storage/base.py.
    "storage": ("exporter/storage/**",),  # sqlite/ and postgres/ alike
    # I/O around the core: the clock, settings file, ingest, live exposition, HTTP, jobs.
    "glue": (
        "exporter/clock.py",
        "exporter/health.py",
        "exporter/lock.py",
        "exporter/preflight.py",
        "exporter/selfmetrics.py",
        "exporter/settings.py",
        "exporter/settings_file.py",
        "exporter/http/**",
        "exporter/ingest/**",
        "exporter/live/collector.py",
        "exporter/live/restore.py",
        "rollup/cleanup.py",
        "rollup/jobs.py",
        "rollup/metrics.py",
        "rollup/queries.py",
        "rollup/scheduler.py",
        "rollup/service.py",
    ),
    # The traffic generator behind ``voxmon demo``: a client of the daemon, not part of it.
    "demo": (
        "exporter/demo/__init__.py",
        "exporter/demo/command.py",
        "exporter/demo/runner.py",
        "exporter/demo/serve.py",
    ),
    # Composition roots: build the services and hand them to each other.
    "wiring": (
        "exporter/__main__.py",
        "exporter/app.py",
        "exporter/cli.py",
        "exporter/cli_parser.py",
        "exporter/logs.py",
        "exporter/commands.py",
        "exporter/daemon.py",
        "exporter/reference.py",
    ),
    # The voxmon-client distribution: its own world.
    "client": ("client/voxmon_client/**",),
}

MAY_IMPORT: dict[str, frozenset[str]] = {
    "pure": frozenset({"pure"}),
    "storage": frozenset({"pure", "storage"}),
    "glue": frozenset({"pure", "storage", "glue"}),
    "demo": frozenset({"pure", "glue", "demo", "client"}),
    "wiring": frozenset({"pure", "storage", "glue", "demo", "wiring"}),
    "client": frozenset({"client"}),
}

FORBIDDEN_IN_PURE = (
    "sqlite3",
    "aiohttp",
    "asyncio",
    "threading",
    "socket",
    "time",
    "prometheus_client",
    "psycopg",
    "exporter.storage",
)
"""Modules a pure module may not reach, directly or through any chain of imports."""

ROLLUP_IMPORTERS = frozenset({"wiring"})
"""Outside rollup/, only the composition roots import it (docs/layout.md)."""

DRIVER_HOMES = {
    "psycopg": "exporter/storage/postgres/**",
    "psycopg_pool": "exporter/storage/postgres/**",
}
"""Database drivers only their backend's package imports (the SQLite backend's sqlite3 is
also used by start-up checks and the file lock, so only PostgreSQL's is confined)."""

TIME_READERS = frozenset({"exporter/clock.py", "client/voxmon_client/clock.py"})
"""The only modules that import ``time``: everything else is handed a clock or ``now``."""

SQL = re.compile(
    r"\bSELECT\b.*\bFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bUPDATE\b.*\bSET\b|\bDELETE\s+FROM\b"
    r"|\b(CREATE|DROP|ALTER)\s+(TABLE|INDEX|VIEW|TRIGGER)\b|\bPRAGMA\s+\w+",
    re.DOTALL,
)
SQL_HOME = "exporter/storage/**"

MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40
LONG_MODULES: dict[str, str] = {}
"""Modules allowed over ``MAX_MODULE_LINES``, each with its reason (none today)."""
LONG_FUNCTIONS: dict[tuple[str, str], str] = {}
"""Functions allowed over ``MAX_FUNCTION_LINES`` (declarative tables), each with its reason."""

TEST_IMPORT = re.compile(r"^\s*(?:from|import)\s+(tests\.test_\w+)", re.MULTILINE)
"""A test module imports helpers (conftest, tools, scrape, ...), never another test module."""


@dataclass(frozen=True, slots=True)
class Tree:
    """A parsed source tree: its modules by name and each one's layer (None: unclassified)."""

    root: Path
    modules: dict[str, Module]
    layers: dict[str, str | None]

    @classmethod
    def parse(cls, root: Path) -> Tree:
        modules = import_graph(root, sources(root))
        return cls(root, modules, {name: layer_of(m.path) for name, m in modules.items()})


def layer_of(path: str) -> str | None:
    """The layer whose patterns match ``path`` (relative, with ``/``); None if none does."""
    found = [layer for layer, patterns in LAYERS.items() if _matches(path, patterns)]
    return found[0] if len(found) == 1 else None


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(path == p or (p.endswith("/**") and path.startswith(p[:-2])) for p in patterns)


def check(root: Path) -> list[str]:
    """Every violation of the rules in the tree at ``root``, one line each; [] when clean."""
    tree = Tree.parse(root)
    return [
        *unclassified(tree),
        *outward_edges(tree),
        *cycles(tree),
        *impure(tree),
        *clock_readers(tree),
        *drivers_outside_home(tree),
        *sql_outside_storage(tree),
        *too_long(tree),
        *cross_test_imports(root),
    ]


def unclassified(tree: Tree) -> Iterator[str]:
    for name, layer in sorted(tree.layers.items()):
        if layer is None:
            path = tree.modules[name].path
            hits = [layer for layer, patterns in LAYERS.items() if _matches(path, patterns)]
            why = f"in {' and '.join(hits)}" if hits else "in no layer"
            yield f"unclassified module {path}: {why} (add it to tests/architecture.py LAYERS)"


def outward_edges(tree: Tree) -> Iterator[str]:
    for name, module in sorted(tree.modules.items()):
        layer = tree.layers[name]
        for target in sorted(module.internal):
            to = tree.layers.get(target)
            if layer is None or to is None:
                continue
            if to not in MAY_IMPORT[layer]:
                allowed = ", ".join(sorted(MAY_IMPORT[layer]))
                yield (
                    f"outward import: {module.path} ({layer}) imports {target} ({to});"
                    f" {layer} may import {allowed}"
                )
            elif _imports_rollup(name, target) and layer not in ROLLUP_IMPORTERS:
                yield f"rollup imported outside the wiring: {module.path} imports {target}"


def _imports_rollup(name: str, target: str) -> bool:
    return target.split(".")[0] == "rollup" != name.split(".")[0]


def cycles(tree: Tree) -> Iterator[str]:
    graph = {name: sorted(m.internal) for name, m in tree.modules.items()}
    reported: set[frozenset[str]] = set()
    for start in sorted(graph):
        for target in graph[start]:
            back = shortest_path(graph, target, start)
            if back is None:
                continue
            loop = [start, *back]
            key = frozenset(loop)
            if key not in reported:
                reported.add(key)
                yield f"import cycle: {' -> '.join(loop)}"


def impure(tree: Tree) -> Iterator[str]:
    graph = {name: sorted(m.internal | m.external) for name, m in tree.modules.items()}
    for name, module in sorted(tree.modules.items()):
        if tree.layers[name] != "pure":
            continue
        for forbidden in FORBIDDEN_IN_PURE:
            chain = shortest_path(graph, name, forbidden, prefix=True)
            if chain is not None:
                how = "" if len(chain) == 2 else f" via {' -> '.join(chain[1:-1])}"
                yield f"pure module {module.path} imports {chain[-1]}{how}"


def clock_readers(tree: Tree) -> Iterator[str]:
    for module in sorted(tree.modules.values(), key=lambda m: m.path):
        if module.imports("time") and module.path not in TIME_READERS:
            yield f"reads the clock: {module.path} imports time (take a Clock or now instead)"


def drivers_outside_home(tree: Tree) -> Iterator[str]:
    for module in sorted(tree.modules.values(), key=lambda m: m.path):
        for driver, home in DRIVER_HOMES.items():
            if module.imports(driver) and not _matches(module.path, (home,)):
                yield f"driver outside its backend: {module.path} imports {driver} (only {home})"


def sql_outside_storage(tree: Tree) -> Iterator[str]:
    for module in sorted(tree.modules.values(), key=lambda m: m.path):
        if _matches(module.path, (SQL_HOME,)):
            continue
        for lineno, text in module.strings:
            match = SQL.search(text)
            if match:
                sql = " ".join(match.group(0).split())[:40]
                yield f"SQL outside exporter/storage/: {module.path}:{lineno} {sql!r}"


def too_long(tree: Tree) -> Iterator[str]:
    for module in sorted(tree.modules.values(), key=lambda m: m.path):
        if module.lines > MAX_MODULE_LINES and module.path not in LONG_MODULES:
            yield f"module too long: {module.path} has {module.lines} lines (max 300)"
        for qualname, length in module.functions.items():
            if length > MAX_FUNCTION_LINES and (module.path, qualname) not in LONG_FUNCTIONS:
                yield f"function too long: {module.path} {qualname} has {length} lines (max 40)"
    yield from _stale_allowances(tree)


def _stale_allowances(tree: Tree) -> Iterator[str]:
    by_path = {m.path: m for m in tree.modules.values()}
    for path in LONG_MODULES:
        if path not in by_path or by_path[path].lines <= MAX_MODULE_LINES:
            yield f"stale allowance: {path} is no longer over 300 lines (remove it)"
    for path, qualname in LONG_FUNCTIONS:
        length = by_path[path].functions.get(qualname, 0) if path in by_path else 0
        if length <= MAX_FUNCTION_LINES:
            yield f"stale allowance: {path} {qualname} is no longer over 40 lines (remove it)"


def cross_test_imports(root: Path) -> Iterator[str]:
    """Test modules import helpers, never another test module (``TEST_MODULE``)."""
    for path in sorted((root / "tests").glob("test_*.py")):
        for name in TEST_IMPORT.findall(path.read_text()):
            rel = path.relative_to(root).as_posix()
            yield f"test module imports a test module: {rel} imports {name}"
