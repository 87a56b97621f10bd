"""Bearer-token authentication with scopes, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from exporter.errors import Forbidden, Unauthorized
from exporter.tokens import Token

IMPLIED = {"read": frozenset({"admin"})}
"""Scopes granted by another: an admin token may read what it administers."""


class Authenticator:
    """Checks ``Authorization: Bearer <token>`` against the configured tokens. With no
    tokens (or ``auth = "none"``) every request is allowed."""

    def __init__(self, tokens: Sequence[Token], enabled: bool) -> None:
        self._tokens = [(token.secret.encode(), token.scopes) for token in tokens]
        self.enabled = enabled

    def check(self, header: str | None, scope: str) -> None:
        """Raise ``Unauthorized`` (401) for a missing or unknown token, ``Forbidden`` (403)
        for a token without ``scope``."""
        if not self.enabled:
            return
        if not header or not header.lower().startswith("bearer "):
            raise Unauthorized(
                "missing bearer token", **{"WWW-Authenticate": 'Bearer realm="voxmon"'}
            )
        # a header that is not UTF-8 reaches us with surrogate escapes; it cannot match a
        # configured token, and encoding it back must not raise
        scopes = self._scopes_of(header[7:].strip().encode("utf-8", "surrogateescape"))
        if scopes is None:
            raise Unauthorized("unknown token", **{"WWW-Authenticate": 'Bearer realm="voxmon"'})
        if scope not in scopes and not (scope in IMPLIED and IMPLIED[scope] & scopes):
            raise Forbidden(f"token lacks the {scope!r} scope")

    def _scopes_of(self, presented: bytes) -> frozenset[str] | None:
        found: frozenset[str] | None = None
        for secret, scopes in self._tokens:  # no early exit: time does not reveal which
            if hmac.compare_digest(secret, presented):
                found = scopes
        return found
