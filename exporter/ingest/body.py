"""Ingest request bodies: gzip with a bounded inflate, JSON or NDJSON into raw items."""

from __future__ import annotations

import zlib
from typing import Annotated, Any

import msgspec

from exporter.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson")
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])


INFLATE_STEP = 256 * 1024
"""Output inflated per step; between steps the prefix is checked for too many items."""


def decompress(body: bytes, encoding: str, max_bytes: int, max_batch: int | None = None) -> bytes:
    """Inflate a ``gzip`` body without ever holding more than ``max_bytes + 1`` bytes of
    output, so a gzip bomb is refused with 413 rather than inflated. The body must be one
    gzip member; anything after it is a 400, not silently ignored. With ``max_batch``, a
    JSON array whose inflated prefix already holds more items is refused (413) as soon as
    that prefix is out, without inflating the rest."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    parts: list[bytes] = []
    size, pending, next_check = 0, body, INFLATE_STEP
    try:
        while not inflater.eof and size <= max_bytes:
            part = inflater.decompress(pending, min(INFLATE_STEP, max_bytes + 1 - size))
            pending = inflater.unconsumed_tail
            parts.append(part)
            size += len(part)
            if not part and not pending:
                break
            if max_batch is not None and not inflater.eof and size >= next_check:
                _refuse_prefix_over(parts, max_batch)
                next_check *= 2  # checks at doubling sizes: the joins stay linear
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}") from None
    if size > max_bytes or (pending and not inflater.eof):
        raise PayloadTooLarge(f"decompressed body exceeds max_body_bytes ({max_bytes} bytes)")
    if not inflater.eof:
        raise BadRequest("gzip body is truncated")
    if inflater.unused_data:
        # A second gzip member or trailing bytes would otherwise be dropped without a word.
        raise BadRequest("gzip body has data after the end of its gzip stream; send one member")
    return b"".join(parts)


def _refuse_prefix_over(parts: list[bytes], max_batch: int) -> None:
    """Cut the inflated prefix after its last comma and close the array: if that parses
    (a cut inside a string or a nested value does not), it holds at most as many items as
    the whole body, so more than ``max_batch`` of them refuses the body."""
    prefix = b"".join(parts) if len(parts) > 1 else parts[0]
    if not prefix.lstrip().startswith(b"["):
        return
    cut = prefix.rfind(b",")
    if cut > 0:
        _refuse_over(prefix[:cut] + b"]", max_batch)


def split_items(body: bytes, content_type: str, max_batch: int) -> list[msgspec.Raw | bytes]:
    """Raw items of a JSON (object or array) or NDJSON body. A malformed JSON body is a
    400; a malformed NDJSON line is left for per-item validation to reject by index.
    NDJSON indexes count non-blank lines. More than ``max_batch`` items is a 413, found
    without decoding more than ``max_batch + 1`` of them, so a cheap gzip of millions of
    tiny items costs about what a small request does."""
    media, charset = _media_type(content_type)
    if charset not in ("", "utf-8", "utf8"):
        raise UnsupportedMediaType(f"charset {charset!r} is not supported; send UTF-8")
    if media in NDJSON_TYPES:
        return _ndjson_items(body, max_batch)
    if media not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media or '(none)'!r} is not supported;"
            " use application/json or application/x-ndjson"
        )
    stripped = body.lstrip()
    if stripped.startswith(b"["):
        _refuse_over(body, max_batch)
        return list(_decode(_raw_list, body))
    if stripped.startswith(b"{"):
        _decode(_raw_one, body)
        return [body]
    raise BadRequest("body must be a JSON object or an array of objects")


MAX_DEPTH_MESSAGE = "body is nested too deeply to be events"
_raw_one = msgspec.json.Decoder(msgspec.Raw)
_over_decoders: dict[int, msgspec.json.Decoder[Any]] = {}


_BEYOND = Annotated[int, msgspec.Meta(gt=0, lt=1)]
"""Matches no JSON value (no integer lies strictly between 0 and 1, and anything else is
not an integer): decoding an array as ``max_batch`` raw items followed by this fails *at*
position ``max_batch`` as soon as there is one item too many, without reading the rest.
(A struct with one field matched an item shaped like it, and an array holding more items
than the tuple then failed with the same message as one holding fewer: the count was off.)"""


def _refuse_over(body: bytes, max_batch: int) -> None:
    if len(body) <= 2 * max_batch + 2:  # n items take 2n + 1 bytes at least: "[1,1]"
        return  # too short to hold more than max_batch items: nothing to count
    decoder = _over_decoders.get(max_batch)
    if decoder is None:
        decoder = msgspec.json.Decoder(tuple[(*(msgspec.Raw,) * max_batch, _BEYOND)])  # type: ignore[misc]
        _over_decoders[max_batch] = decoder
    try:
        decoder.decode(body)
    except msgspec.ValidationError as exc:
        if f"`$[{max_batch}]`" not in str(exc):
            return  # fewer items than the tuple: within the limit
    except (msgspec.DecodeError, RecursionError):
        return  # malformed: the real decode reports it
    raise PayloadTooLarge(f"more than {max_batch} events in one request; at most {max_batch}")


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest(MAX_DEPTH_MESSAGE) from None


def _ndjson_items(body: bytes, max_batch: int) -> list[msgspec.Raw | bytes]:
    if body.count(b"\n") > 2 * max_batch:  # bounds the split below, blank lines included
        raise PayloadTooLarge(f"more than {2 * max_batch} NDJSON lines in one request")
    items: list[msgspec.Raw | bytes] = [line for line in body.split(b"\n") if line.strip()]
    if len(items) > max_batch:
        raise PayloadTooLarge(f"{len(items)} events in one request; at most {max_batch}")
    return items


def _media_type(content_type: str) -> tuple[str, str]:
    """``(media type, charset)`` of a Content-Type header, lower-cased."""
    media, _, params = content_type.partition(";")
    charset = ""
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset
