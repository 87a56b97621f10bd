"""Snapshot parts to and from the compact bytes stored in ``snapshots.parts``."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from rollup.digest import LatencyDigest
from rollup.parts import SnapshotParts, StageParts

_SCALARS = tuple(
    f.name
    for f in dataclasses.fields(SnapshotParts)
    if f.name not in ("stages", "end_to_end", "stage_ai_cost_usd")
)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(dict[str, Any])


def encode_parts(parts: SnapshotParts) -> bytes:
    """Serialise every part; digests keep their exact buckets."""
    body: dict[str, Any] = {name: getattr(parts, name) for name in _SCALARS}
    body["stages"] = {
        stage: [sp.started, sp.succeeded, sp.failed, sp.latency.to_bytes(), sp.ai_cost_usd]
        for stage, sp in parts.stages.items()
    }
    body["end_to_end"] = parts.end_to_end.to_bytes()
    body["stage_ai_cost_usd"] = dict(parts.stage_ai_cost_usd)
    return _encoder.encode(body)


def decode_parts(data: bytes) -> SnapshotParts:
    """Inverse of ``encode_parts``."""
    body = _decoder.decode(data)
    stages = {
        stage: StageParts(started, succeeded, failed, LatencyDigest.from_bytes(digest), cost)
        for stage, (started, succeeded, failed, digest, cost) in body.pop("stages").items()
    }
    return SnapshotParts(
        **{name: body[name] for name in _SCALARS},
        stages=stages,
        end_to_end=LatencyDigest.from_bytes(body["end_to_end"]),
        stage_ai_cost_usd=body["stage_ai_cost_usd"],
    )
