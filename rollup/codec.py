"""Snapshot parts to and from the compact bytes stored in ``snapshots.parts`` (msgpack)."""

from __future__ import annotations

import msgspec

from rollup.parts import SnapshotParts

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(SnapshotParts).decode


def encode_parts(parts: SnapshotParts) -> bytes:
    """Serialise every part; digests keep their exact buckets."""
    return _encode(parts)


def decode_parts(data: bytes) -> SnapshotParts:
    """Inverse of ``encode_parts``."""
    return _decode(data)
