"""Ingest bodies: content types, JSON/NDJSON splitting, bounded gzip inflation."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import msgspec
import pytest

from exporter.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from exporter.ingest.body import decompress, split_items
from exporter.validation import Horizon, validate_items
from tests.conftest import T0_MS, make_event

MIB = 1024 * 1024
MAX_BYTES = 5 * MIB


def _items(body: bytes, content_type: str) -> list[bytes]:
    return [bytes(item) for item in split_items(body, content_type, 10_000)]


def _gzip_zeros(size: int) -> bytes:
    """``size`` zero bytes gzip-compressed, built in 1 MiB chunks (never held inflated)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = bytes(MIB)
    parts = [packer.compress(chunk) for _ in range(size // MIB)]
    parts.append(packer.flush())
    return b"".join(parts)


# --- split_items --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "count", "refused"),
    [
        (b"{}", 3, False),
        (b"{}", 4, True),
        (b"{}", 2_600_000, True),
        (b"1", 3, False),
        (b"1", 4, True),
    ],
)
def test_split_items_refuses_over_max_batch_without_decoding_every_item(
    item: bytes, count: int, refused: bool
) -> None:
    """2.6 million tiny items (a 5 KB gzip) are refused after reading max_batch + 1 of
    them: the refusal allocates a few KiB, not one object per item. The shortest body
    that holds max_batch + 1 items (``[1,1,1,1]``, 9 bytes) is refused too: only shorter
    bodies skip the count."""
    body = b"[" + b",".join([item] * count) + b"]"
    tracemalloc.start()
    try:
        if refused:
            with pytest.raises(
                PayloadTooLarge, match="more than 3 events in one request; at most 3"
            ):
                split_items(body, "application/json", 3)
        else:
            assert len(split_items(body, "application/json", 3)) == count
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


@pytest.mark.parametrize(
    "marker", [b'{"_never":1}', b'{"_never":1,"a":2}', b"0", b"1", b"0.5", b"true", b'"x"']
)
@pytest.mark.parametrize("after", [0, 1, 500])
def test_split_items_counts_past_any_item_at_position_max_batch(marker: bytes, after: int) -> None:
    """The count does not depend on what the item at position ``max_batch`` holds: an item
    shaped like the count's own marker (``{"_never": 1}``) once let a body of any length
    through, as long as more items followed it."""
    body = b"[" + b",".join([b"{}"] * 3 + [marker] + [b"{}"] * after) + b"]"
    with pytest.raises(PayloadTooLarge, match="more than 3 events in one request; at most 3"):
        split_items(body, "application/json", 3)


def test_split_items_at_max_batch_exactly_is_accepted() -> None:
    body = msgspec.json.encode([make_event(event_id=f"e-{i}") for i in range(3)])
    assert len(split_items(body, "application/json", 3)) == 3


def test_split_items_ndjson_over_max_batch_is_413() -> None:
    body = b"\n".join(msgspec.json.encode(make_event(event_id=f"e-{i}")) for i in range(4))
    with pytest.raises(PayloadTooLarge, match="4 events in one request; at most 3"):
        split_items(body, "application/x-ndjson", 3)
    with pytest.raises(PayloadTooLarge, match="more than 6 NDJSON lines"):
        split_items(b"\n" * 7, "application/x-ndjson", 3)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'[{"metadata": {"a": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_002 + b"]",
    ],
)
def test_split_items_deep_nesting_is_a_clear_400(body: bytes) -> None:
    with pytest.raises(BadRequest, match="nested too deeply"):
        split_items(body, "application/json", 10_000)


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json; charset=utf-8", True),
        ('application/json; charset="UTF-8"', True),
        ("application/json; charset=utf-16", False),
        ("application/x-ndjson; charset=latin-1", False),
    ],
)
def test_split_items_only_utf8(content_type: str, accepted: bool) -> None:
    if accepted:
        assert split_items(b"{}", content_type, 10) == [b"{}"]
        return
    with pytest.raises(UnsupportedMediaType, match="send UTF-8"):
        split_items(b"{}", content_type, 10)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        " application/json ",
    ],
)
def test_split_items_json_object_is_one_item(content_type: str) -> None:
    body = b'{"event_id": "e-1", "n": [1, 2]}'
    assert _items(body, content_type) == [body]


def test_split_items_json_object_with_surrounding_whitespace() -> None:
    body = b'\n  {"event_id": "e-1"}\n'
    assert _items(body, "application/json") == [body]


def test_split_items_json_array_gives_each_item_raw() -> None:
    body = b'[{"event_id": "e-1"}, {"event_id": "e-2", "x": {"y": [1]}}, 5]'
    assert _items(body, "application/json") == [
        b'{"event_id": "e-1"}',
        b'{"event_id": "e-2", "x": {"y": [1]}}',
        b"5",
    ]


def test_split_items_empty_json_array() -> None:
    assert _items(b" [ ] ", "application/json") == []


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/ndjson"])
def test_split_items_ndjson_skips_blank_lines(content_type: str) -> None:
    body = b'\n{"event_id": "e-1"}\n\n   \n{"event_id": "e-2"}\r\n\t\n{"event_id": "e-3"}'
    assert _items(body, content_type) == [
        b'{"event_id": "e-1"}',
        b'{"event_id": "e-2"}\r',
        b'{"event_id": "e-3"}',
    ]


def test_split_items_ndjson_malformed_line_left_for_validation() -> None:
    lines = [
        msgspec.json.encode(make_event(event_id="n-0")),
        b'{"event_id": "n-1", ',
        b"",
        msgspec.json.encode(make_event(event_id="n-2")),
    ]
    items = split_items(b"\n".join(lines), "application/x-ndjson", 10_000)
    events, rejections, _ = validate_items(items, T0_MS, Horizon())
    assert [e.event_id for e in events] == ["n-0", "n-2"]
    assert [(r.index, r.reason) for r in rejections] == [(1, "invalid_json")]


def test_split_items_empty_ndjson_body_has_no_items() -> None:
    assert _items(b"\n \n", "application/x-ndjson") == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"event_id": "e-1"', "body is not valid JSON"),
        (b'{"event_id": "e-1"} {"event_id": "e-2"}', "body is not valid JSON"),
        (b'[{"event_id": "e-1"},', "body is not valid JSON"),
        (b"[1, 2,]", "body is not valid JSON"),
        (b'"a string"', "body must be a JSON object or an array of objects"),
        (b"42", "body must be a JSON object or an array of objects"),
        (b"", "body must be a JSON object or an array of objects"),
        (b"   ", "body must be a JSON object or an array of objects"),
        (b"[" * 100_000 + b"]" * 100_000, "body is nested too deeply"),
        (b'[{"metadata": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}]", "nested too deeply"),
        (b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
)
def test_split_items_malformed_json_is_bad_request(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message) as caught:
        split_items(body, "application/json", 10_000)
    assert caught.value.status == 400
    assert caught.value.code == "bad_request"


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("text/plain", "'text/plain'"),
        ("application/xml; charset=utf-8", "'application/xml'"),
        ("application/jsonl", "'application/jsonl'"),
        ("", "'(none)'"),
    ],
)
def test_split_items_unsupported_content_type_is_415(content_type: str, shown: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        split_items(b"{}", content_type, 10_000)
    assert caught.value.status == 415
    assert caught.value.code == "unsupported_media_type"
    assert caught.value.message.startswith(f"Content-Type {shown} is not supported")


# --- decompress ---------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["", "identity", " Identity "])
def test_decompress_identity_passes_body_through(encoding: str) -> None:
    body = b'{"event_id": "e-1"}'
    assert decompress(body, encoding, MAX_BYTES) is body


@pytest.mark.parametrize("encoding", ["gzip", "GZIP", " gzip "])
def test_decompress_gzip_round_trip(encoding: str) -> None:
    body = b"\n".join(msgspec.json.encode(make_event(event_id=f"g-{i}")) for i in range(100))
    assert decompress(gzip.compress(body), encoding, MAX_BYTES) == body


def test_decompress_gzip_then_split_items() -> None:
    body = b'[{"event_id": "e-1"}, {"event_id": "e-2"}]'
    items = _items(decompress(gzip.compress(body), "gzip", MAX_BYTES), "application/json")
    assert items == [b'{"event_id": "e-1"}', b'{"event_id": "e-2"}']


@pytest.mark.parametrize(("size", "allowed"), [(1000, True), (1001, False)])
def test_decompress_limit_is_inclusive(size: int, allowed: bool) -> None:
    body = gzip.compress(b"x" * size)
    if allowed:
        assert decompress(body, "gzip", 1000) == b"x" * size
    else:
        with pytest.raises(PayloadTooLarge):
            decompress(body, "gzip", 1000)


def test_decompress_gzip_bomb_refused_without_inflating() -> None:
    bomb = _gzip_zeros(50 * MIB)
    assert len(bomb) < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge) as caught:
            decompress(bomb, "gzip", MAX_BYTES)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.status == 413
    assert caught.value.message == (f"decompressed body exceeds max_body_bytes ({MAX_BYTES} bytes)")
    # At most max_bytes + 1 of output is produced (zlib's growing buffer may briefly hold
    # two copies of it): bounded by max_bytes, far below the 50 MiB the bomb inflates to.
    assert peak < 3 * MAX_BYTES


@pytest.mark.parametrize("cut", [1, 4, 8, 20])
def test_decompress_truncated_gzip_is_bad_request(cut: int) -> None:
    body = gzip.compress(b'{"event_id": "e-1", "padding": "' + b"p" * 200 + b'"}')
    with pytest.raises(BadRequest, match="gzip body is truncated") as caught:
        decompress(body[:-cut], "gzip", MAX_BYTES)
    assert caught.value.status == 400


@pytest.mark.parametrize("body", [b"not gzip at all", b'{"event_id": "e-1"}', b"\x1f\x8b\x08junk"])
def test_decompress_invalid_gzip_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest, match="gzip") as caught:
        decompress(body, "gzip", MAX_BYTES)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "tail", [gzip.compress(b'{"event_id": "e-2"}'), b"trailing garbage"], ids=["member", "junk"]
)
def test_decompress_data_after_gzip_stream_is_bad_request(tail: bytes) -> None:
    body = gzip.compress(b'{"event_id": "e-1"}') + tail
    with pytest.raises(BadRequest, match="after the end of its gzip stream"):
        decompress(body, "gzip", MAX_BYTES)


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress", "zstd", "gzip, br"])
def test_decompress_unknown_encoding_is_415(encoding: str) -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        decompress(b"{}", encoding, MAX_BYTES)
    assert caught.value.status == 415
    assert caught.value.message == (f"Content-Encoding {encoding!r} is not supported; use gzip")


def test_decompress_refuses_a_gzip_with_a_marker_item_after_max_batch() -> None:
    """A 5 KB gzip of 1.7 million items with ``{"_never": 0}`` at position max_batch is
    refused from its first inflated step, as without that item."""
    items = [b"{}"] * 10_000 + [b'{"_never":0}'] + [b"{}"] * 1_700_000
    body = gzip.compress(b"[" + b",".join(items) + b"]", 9)
    assert len(body) < 10_000
    with pytest.raises(PayloadTooLarge, match="more than 10000 events in one request"):
        decompress(body, "gzip", MAX_BYTES, max_batch=10_000)


def test_decompress_refuses_a_gzip_of_millions_of_items_after_its_first_step() -> None:
    """1.7 million one-byte items (a 3 KB gzip, 3.4 MB inflated, inside max_body_bytes):
    the first inflated step already holds more than max_batch items, so the rest is never
    inflated."""
    body = gzip.compress(b"[" + b",".join([b"0"] * 1_700_000) + b"]", 9)
    assert len(body) < 5_000
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match="more than 10000 events in one request"):
            decompress(body, "gzip", MAX_BYTES, max_batch=10_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MIB  # inflating it all holds 3.4 MB
    assert len(decompress(body, "gzip", MAX_BYTES)) == 3_400_001  # without max_batch: all
