"""Bearer tokens: what a ``[[tokens]]`` table of ``voxmon.toml`` declares, and its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCOPES = frozenset({"ingest", "read", "admin", "metrics"})


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and the scopes it grants."""

    name: str
    secret: str = field(repr=False)
    scopes: frozenset[str]


def parse_tokens(raw: Any, problems: list[str]) -> tuple[Token, ...]:
    """The ``[[tokens]]`` tables of ``voxmon.toml``; each problem is appended to ``problems``."""
    if not isinstance(raw, list):
        problems.append("tokens: expected an array of tables [[tokens]]")
        return ()
    tokens = []
    for index, item in enumerate(raw):
        where = f"tokens[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: expected a table")
            continue
        secret, scopes = item.get("token"), item.get("scopes")
        extra = set(item) - {"name", "token", "scopes"}
        if extra:
            problems.append(f"{where}: unknown keys {sorted(extra)}")
        if not isinstance(secret, str) or len(secret) < 16:
            problems.append(f"{where}.token: required, a string of at least 16 characters")
            continue
        if not isinstance(scopes, list) or not scopes or not all(_is_scope(s) for s in scopes):
            problems.append(f"{where}.scopes: a non-empty list drawn from {sorted(SCOPES)}")
            continue
        tokens.append(Token(str(item.get("name", where)), secret, frozenset(scopes)))
    return tuple(tokens)


def _is_scope(value: Any) -> bool:
    return isinstance(value, str) and value in SCOPES
