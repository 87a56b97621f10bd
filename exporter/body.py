"""Ingest request bodies: gzip with a bounded inflate, JSON or NDJSON into raw items."""

from __future__ import annotations

import zlib

import msgspec

from exporter.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson")
_raw_list = msgspec.json.Decoder(list[msgspec.Raw])


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """Inflate a ``gzip`` body without ever holding more than ``max_bytes + 1`` bytes of
    output, so a gzip bomb is refused with 413 rather than inflated. The body must be one
    gzip member; anything after it is a 400, not silently ignored."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; use gzip")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(f"body is not valid gzip: {exc}") from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds max_body_bytes ({max_bytes} bytes)")
    if not inflater.eof:
        raise BadRequest("gzip body is truncated")
    if inflater.unused_data:
        # A second gzip member or trailing bytes would otherwise be dropped without a word.
        raise BadRequest("gzip body has data after the end of its gzip stream; send one member")
    return data


def split_items(body: bytes, content_type: str) -> list[msgspec.Raw | bytes]:
    """Raw items of a JSON (object or array) or NDJSON body. A malformed JSON body is a
    400; a malformed NDJSON line is left for per-item validation to reject by index.
    NDJSON indexes count non-blank lines."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in NDJSON_TYPES:
        return [line for line in body.split(b"\n") if line.strip()]
    if media not in JSON_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media or '(none)'!r} is not supported;"
            " use application/json or application/x-ndjson"
        )
    stripped = body.lstrip()
    try:
        if stripped.startswith(b"["):
            return list(_raw_list.decode(body))
        if stripped.startswith(b"{"):
            msgspec.json.decode(body, type=msgspec.Raw)
            return [body]
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    except RecursionError:  # the decoder recurses per level; a 5 MiB body can nest deeper
        raise BadRequest("body is nested too deeply to be events") from None
    raise BadRequest("body must be a JSON object or an array of objects")
