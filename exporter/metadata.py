"""Event metadata: the known keys validated as ``Metadata``, any other keys kept as sent
within bounds (key count, key length, size, nesting), and the per-event cost maximum."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from exporter.model import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    Metadata,
    OpenMetadata,
)
from exporter.rejections import ItemInvalid, from_validation_error

_known_metadata = msgspec.json.Decoder(Metadata)
_open_metadata = msgspec.json.Decoder(OpenMetadata)
_NULL = msgspec.Raw(b"null")
_KNOWN = frozenset(Metadata.__struct_fields__)


def parse_metadata(raw: msgspec.Raw, max_cost_usd: float) -> tuple[Metadata | None, str | None]:
    """The known keys and the metadata text to store; an ``ai_cost_usd`` above
    ``max_cost_usd`` is rejected (a cost cannot be dropped like a duration)."""
    metadata, text = _metadata(raw)
    if metadata is not None and 0.0 in (metadata.ai_cost_usd, metadata.confidence):
        metadata = _positive_zeros(metadata)
    if metadata is not None and (metadata.ai_cost_usd or 0.0) > max_cost_usd:
        raise ItemInvalid(
            "invalid_value",
            "metadata.ai_cost_usd",
            f"ai_cost_usd is {metadata.ai_cost_usd:g}; at most {max_cost_usd:g} per event"
            " (max_event_cost_usd)",
        )
    return metadata, text


def _positive_zeros(metadata: Metadata) -> Metadata:
    """The known floats that voxmon sums and stores in columns with -0.0 as 0.0 (equal,
    but they would make stored bytes depend on the order rows are added in); the
    metadata text is kept as sent."""
    cost, confidence = metadata.ai_cost_usd, metadata.confidence
    return msgspec.structs.replace(
        metadata,
        ai_cost_usd=None if cost is None else cost + 0.0,
        confidence=None if confidence is None else confidence + 0.0,
    )


def _metadata(raw: msgspec.Raw) -> tuple[Metadata | None, str | None]:
    """Known keys validated as ``Metadata``; the whole object (unknown keys too, any JSON
    values) bounded and kept as sent for storage (empty ``raw``: no metadata sent)."""
    if raw == _NULL:
        return None, None
    if len(raw) > MAX_METADATA_BYTES:
        raise metadata_too_large(f"is {len(raw)} bytes; at most {MAX_METADATA_BYTES}")
    text = bytes(raw)
    try:  # the usual case, known keys only: one decode checks everything
        return _known_metadata.decode(text), text.decode()
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        pass  # unknown keys, or an error the checks below name precisely
    try:
        values = _open_metadata.decode(text)  # checks every value: UTF-8, number range
        _check_shape(values)
        known = msgspec.convert({k: v for k, v in values.items() if k in _KNOWN}, Metadata)
    except msgspec.ValidationError as exc:
        raise from_validation_error(str(exc), "metadata") from None
    except msgspec.DecodeError as exc:
        raise ItemInvalid("invalid_json", "metadata", f"metadata: {exc}") from None
    except RecursionError:
        raise metadata_too_large(f"nested more than {MAX_METADATA_DEPTH} levels") from None
    return known, text.decode()  # valid UTF-8: the decoder above checked every string


def _check_shape(values: OpenMetadata) -> None:
    """Key count, key length and nesting bounds (after the size bound: the walk is short)."""
    if len(values) > MAX_METADATA_KEYS:
        raise metadata_too_large(f"has {len(values)} keys; at most {MAX_METADATA_KEYS}")
    longest = max(values, key=len, default="")
    if len(longest) > MAX_METADATA_KEY_CHARS:
        raise metadata_too_large(
            f"key {longest[:32]!r}... has {len(longest)} characters;"
            f" at most {MAX_METADATA_KEY_CHARS}"
        )
    if any(_nested_deeper(value, MAX_METADATA_DEPTH) for value in values.values()):
        raise metadata_too_large(f"nested more than {MAX_METADATA_DEPTH} levels")


def _nested_deeper(value: object, levels: int) -> bool:
    """Whether ``value`` has containers nested more than ``levels`` deep."""
    if isinstance(value, dict):
        children: Iterable[object] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return False
    return levels == 0 or any(_nested_deeper(child, levels - 1) for child in children)


def metadata_too_large(problem: str) -> ItemInvalid:
    return ItemInvalid("metadata_too_large", "metadata", f"metadata {problem}")
