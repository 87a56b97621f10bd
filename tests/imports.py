"""voxmon's sources parsed with ``ast``: each module's imports (function-level and
``TYPE_CHECKING`` ones included), its non-docstring string literals, its function lengths."""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PACKAGES = ("exporter", "rollup", "client/voxmon_client")
"""Source roots, relative to the repository; the client's import name is its folder's."""


@dataclass(frozen=True, slots=True)
class Facts:
    """What one source file says, before its imports are resolved against the tree."""

    lines: int
    imports: tuple[str, ...]
    strings: tuple[tuple[int, str], ...]
    functions: tuple[tuple[str, int], ...]


@dataclass(slots=True)
class Module:
    """One source file: ``internal`` holds voxmon module names it imports, ``external`` the
    other dotted names; ``strings`` are (line, text) of literals that are not docstrings;
    ``functions`` maps qualified names (``Class.method``, ``outer.inner``) to their lines."""

    name: str
    path: str
    facts: Facts
    internal: set[str] = field(default_factory=set)
    external: set[str] = field(default_factory=set)

    @property
    def lines(self) -> int:
        return self.facts.lines

    @property
    def strings(self) -> tuple[tuple[int, str], ...]:
        return self.facts.strings

    @property
    def functions(self) -> dict[str, int]:
        return dict(self.facts.functions)

    def imports(self, name: str) -> bool:
        """Whether this module imports ``name`` or anything inside it."""
        return any(n == name or n.startswith(f"{name}.") for n in self.internal | self.external)


def sources(root: Path) -> list[Path]:
    """Every ``.py`` file of the source roots under ``root``, sorted."""
    return sorted(path for package in PACKAGES for path in (root / package).glob("**/*.py"))


def module_name(rel: str) -> str:
    """``exporter/live/state.py`` -> ``exporter.live.state``; a package is its folder."""
    parts = rel.removesuffix(".py").split("/")
    if parts[0] == "client":
        parts = parts[1:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, paths: Iterable[Path]) -> dict[str, Module]:
    """The modules at ``paths`` by dotted name, with their imports resolved."""
    modules: dict[str, Module] = {}
    for path in paths:
        rel = path.relative_to(root).as_posix()
        modules[module_name(rel)] = Module(module_name(rel), rel, facts(rel, path.read_text()))
    for module in modules.values():
        for target in module.facts.imports:
            resolved = _resolve(target, modules)
            (module.internal if resolved in modules else module.external).add(resolved)
    return modules


@cache
def facts(rel: str, text: str) -> Facts:
    """Parse ``text`` (the file at ``rel``) once: a copy of the tree with one file changed
    parses only that file again."""
    tree = ast.parse(text, filename=rel)
    name = module_name(rel)
    package = name if rel.endswith("__init__.py") else name.rpartition(".")[0]
    imports: list[str] = []
    strings: list[tuple[int, str]] = []
    functions: list[tuple[str, int]] = []
    skip: set[int] = set()  # docstrings, and the pieces of f-strings (read whole)
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            imports.extend(_targets(node, package))
        elif isinstance(node, ast.Expr) and _is_str(node.value):
            skip.add(id(node.value))
        elif isinstance(node, ast.JoinedStr):
            skip.update(id(value) for value in node.values)
            strings.append((node.lineno, "".join(_text(value) for value in node.values)))
        elif isinstance(node, ast.Constant) and id(node) not in skip:
            if isinstance(node.value, str):
                strings.append((node.lineno, node.value))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            functions.append((f"{prefix}{node.name}", node.end_lineno - node.lineno + 1))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            prefix = f"{prefix}{node.name}."
        stack.extend((child, prefix) for child in reversed(list(ast.iter_child_nodes(node))))
    return Facts(len(text.splitlines()), tuple(imports), tuple(sorted(strings)), tuple(functions))


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """Dotted names an import statement reaches; ``from a import b`` gives ``a.b`` (resolved
    to ``a`` later when ``b`` is not a module). Relative imports are made absolute."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parent = parts[: len(parts) - node.level + 1]
        base = ".".join([*parent, base] if base else parent)
    return [f"{base}.{alias.name}" for alias in node.names]


def _resolve(name: str, modules: Mapping[str, Module]) -> str:
    """The longest prefix of ``name`` that is a known module, else ``name`` as imported
    (``from sqlite3 import Row`` stays ``sqlite3.Row``)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return name


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _text(node: ast.expr) -> str:
    """An f-string piece: its text, or ``{}`` for a replacement field."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else "{}"


def shortest_path(
    graph: Mapping[str, Sequence[str]], start: str, target: str, *, prefix: bool = False
) -> list[str] | None:
    """Nodes from ``start`` to ``target`` along the edges of ``graph`` (breadth first, so
    the shortest), or None. With ``prefix``, any ``target.*`` node is reached too."""

    def hit(node: str) -> bool:
        return node == target or (prefix and node.startswith(f"{target}."))

    came: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in graph.get(node, ()):
            if hit(nxt):
                chain = [nxt, node]
                while (back := came[chain[-1]]) is not None:
                    chain.append(back)
                return chain[::-1]
            if nxt not in came:
                came[nxt] = node
                queue.append(nxt)
    return None
