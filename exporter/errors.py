"""voxmon's error family. HTTP-facing errors carry ``status`` and ``code``; one middleware
turns them into ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class VoxmonError(Exception):
    """Base of every error voxmon raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str, details: Sequence[Any] = (), **headers: str) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)
        self.headers = headers


class ConfigError(VoxmonError):
    """Every problem found in a configuration, reported together."""

    code = "config_invalid"

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems), problems)
        self.problems = list(problems)


class StartupError(VoxmonError):
    """Why ``serve`` cannot start, and what ``check-config`` reports: one line each, exit
    code 2, never a traceback."""

    code = "startup_failed"


class BadRequest(VoxmonError):
    status = 400
    code = "bad_request"


class Unauthorized(VoxmonError):
    status = 401
    code = "unauthorized"


class Forbidden(VoxmonError):
    status = 403
    code = "forbidden"


class NotFound(VoxmonError):
    status = 404
    code = "not_found"


class ClientClosedRequest(VoxmonError):
    """The client closed its connection before its request body arrived: no one is left
    to answer (nginx's 499). Counted by code, never logged as voxmon's error."""

    status = 499
    code = "client_closed_request"


class RequestTimeout(VoxmonError):
    """The client did not send its request body in time (``body_timeout_s``)."""

    status = 408
    code = "request_timeout"


class Conflict(VoxmonError):
    """The request is valid but the stored state does not allow it (e.g. a backfill of
    windows whose inputs were pruned)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(VoxmonError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(VoxmonError):
    status = 415
    code = "unsupported_media_type"


class CommitFailed(VoxmonError):
    """One request's events failed to commit on their own while storage works."""

    status = 500
    code = "commit_failed"


class Unavailable(VoxmonError):
    """Temporarily unable to accept work (queue full, storage failing); carries
    ``Retry-After``."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, **{"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s
