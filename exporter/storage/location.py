"""Where the data lives: ``database_url`` (empty, a path, ``sqlite:///path`` or
``postgresql://...``) and ``db_path`` resolved to one backend and its target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

SQLITE_PREFIX = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class Location:
    """``kind`` "sqlite" with a file path, or "postgres" with a connection URL."""

    kind: Literal["sqlite", "postgres"]
    target: str

    @property
    def shown(self) -> str:
        """The target as logs and messages show it: a URL without its password."""
        if self.kind == "sqlite":
            return self.target
        parts = urlsplit(self.target)
        if parts.password is None:
            return self.target
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))


def locate(database_url: str, db_path: str) -> Location:
    """The backend ``database_url`` selects; empty keeps the SQLite file ``db_path``."""
    if database_url.startswith(POSTGRES_SCHEMES):
        return Location("postgres", database_url)
    if database_url.startswith(SQLITE_PREFIX):
        return Location("sqlite", database_url[len(SQLITE_PREFIX) :])
    return Location("sqlite", database_url or db_path)


def url_problem(database_url: str) -> str | None:
    """Why ``database_url`` selects no backend, None when it does."""
    if "://" in database_url and not database_url.startswith((SQLITE_PREFIX, *POSTGRES_SCHEMES)):
        scheme = database_url.split("://", 1)[0]
        return f"unsupported scheme {scheme!r}; use a path, sqlite:///path or postgresql://..."
    if database_url == SQLITE_PREFIX:
        return "sqlite:/// needs a file path after it"
    return None
