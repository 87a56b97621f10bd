"""Why an item is rejected: ``ItemInvalid`` (reason, field path, message) and msgspec's
validation errors turned into dotted field paths (``metadata.confidence``)."""

from __future__ import annotations

import re

from exporter.model import FieldError

_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]*)`")
_MISSING = re.compile(r"^Object missing required field `([^`]*)`")
_TIME_FIELDS = ("timestamp", "stage_started_at", "stage_completed_at")


class ItemInvalid(Exception):
    """Raised inside validation to reject one item."""

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.error = FieldError(field, message)


def from_validation_error(text: str, within: str = "") -> ItemInvalid:
    """The msgspec error as an ``ItemInvalid``; ``within`` prefixes the path (a nested
    decode). Paths into untyped metadata values (``metadata[...]``) name ``metadata``."""
    match = _PATH.search(text)
    path = match.group(1) if match else ""
    message = text[: match.start()] if match else text
    if within:
        path = within + ("." if path and not path.startswith("[") else "") + path
    if path.startswith("metadata["):
        path = "metadata"
    if unknown := _UNKNOWN.match(message):
        field = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        return ItemInvalid("unknown_field", field, f"unknown field {field!r}")
    if missing := _MISSING.match(message):
        field = f"{path}.{missing.group(1)}" if path else missing.group(1)
        return ItemInvalid("missing_field", field, f"{field} is required")
    if not path:
        return ItemInvalid("invalid_type", "", f"item must be a JSON object: {message}")
    if path in _TIME_FIELDS:
        return ItemInvalid(
            "invalid_timestamp", path, f"{message}; expected RFC 3339 with offset or epoch ms"
        )
    return ItemInvalid("invalid_value", path, message)
