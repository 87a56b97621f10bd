"""Snapshot parts to and from the compact bytes stored in ``snapshots.parts``: a msgpack map
of the parts by name whose digests are in their packed form (``rollup.packed``), after a
two-byte mark. Rows stored before the mark (digests as lists of ints) still decode."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec.structs import astuple

from exporter.catalog import PROCESSING_STAGES, STAGES
from rollup import merger, packed
from rollup.digest import LatencyDigest
from rollup.packed import PackedDigest
from rollup.parts import ADDITIVE, SnapshotParts, StageParts

MARK = b"\xc1\x02"
"""0xc1 is the one byte msgpack never writes, so no row from before the mark starts so."""


class StoredStage(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """``StageParts`` as stored (holds no containers: untracked by the cycle collector)."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    latency: PackedDigest = packed.EMPTY
    ai_cost_usd: float = 0.0


_NO_STAGE = StoredStage()
"""A stage a row does not hold (stored before the stage existed): nothing happened in it."""
_encode = msgspec.msgpack.Encoder().encode
_legacy = msgspec.msgpack.Decoder(SnapshotParts).decode


def _stored_fields() -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []
    for name in SnapshotParts.__struct_fields__:
        kind: Any = SnapshotParts.__annotations__[name]
        if name == "stages":
            kind = dict[str, StoredStage]
        elif name == "end_to_end":
            kind = PackedDigest
        out.append((name, kind, msgspec.field(default_factory=_DEFAULTS[name])))
    return out


_DEFAULTS: dict[str, Any] = {
    **{name: type(getattr(SnapshotParts(), name)) for name in ADDITIVE},
    "stages": lambda: {stage: StoredStage() for stage in PROCESSING_STAGES},
    "end_to_end": lambda: packed.EMPTY,
    "stage_ai_cost_usd": lambda: dict.fromkeys(STAGES, 0.0),
}
StoredParts: Any = msgspec.defstruct("StoredParts", _stored_fields(), frozen=True, gc=False)
"""``SnapshotParts`` as stored, field for field (names kept, so fields can be added later),
untracked by the cycle collector (its dicts hold only numbers and stored stages: no cycle),
built from its declaration so the two cannot drift; readers use ``getattr``."""
_ADDITIVE_AT = [(name, StoredParts.__struct_fields__.index(name)) for name in ADDITIVE]
_STAGES_AT = StoredParts.__struct_fields__.index("stages")
_COSTS_AT = StoredParts.__struct_fields__.index("stage_ai_cost_usd")
_decode_stored = msgspec.msgpack.Decoder(StoredParts).decode


def encode_parts(parts: SnapshotParts) -> bytes:
    """Serialise every part; digests keep their exact buckets."""
    return encode_stored(stored(parts))


def encode_stored(parts: Any) -> bytes:
    """Bytes of a ``StoredParts``."""
    return MARK + _encode(parts)


def decode_parts(data: bytes) -> SnapshotParts:
    """Inverse of ``encode_parts`` (also for rows stored before the mark); ValueError when
    malformed or a digest is inconsistent."""
    if data[:2] != MARK:
        return _legacy_parts(data)
    return unstored(decode_stored(data))


def decode_stored(data: bytes) -> Any:
    """A row's ``StoredParts`` without building per-bucket objects (digests unchecked until
    read: ``packed.check``, ``packed.merge_groups``); ValueError when malformed."""
    if data[:2] != MARK:
        return stored(_legacy_parts(data))
    try:
        return _decode_stored(memoryview(data)[2:])
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed snapshot parts: {exc}") from exc


def _legacy_parts(data: bytes) -> SnapshotParts:
    try:
        return _legacy(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed snapshot parts: {exc}") from exc


def stored(parts: SnapshotParts) -> Any:
    """The ``StoredParts`` of ``parts``."""
    values: dict[str, Any] = {name: getattr(parts, name) for name in ADDITIVE}
    values["stages"] = {
        stage: StoredStage(sp.started, sp.succeeded, sp.failed, sp.latency.packed(),
                           sp.ai_cost_usd)
        for stage, sp in parts.stages.items()
    }  # fmt: skip
    values["end_to_end"] = parts.end_to_end.packed()
    values["stage_ai_cost_usd"] = dict(parts.stage_ai_cost_usd)
    return StoredParts(**values)


def unstored(parts: Any) -> SnapshotParts:
    """The ``SnapshotParts`` of a ``StoredParts``, every digest checked."""
    values: dict[str, Any] = {name: getattr(parts, name) for name in ADDITIVE}
    values["stages"] = {
        stage: StageParts(sp.started, sp.succeeded, sp.failed,
                          LatencyDigest.from_packed(sp.latency), sp.ai_cost_usd)
        for stage, sp in parts.stages.items()
    }  # fmt: skip
    values["end_to_end"] = LatencyDigest.from_packed(parts.end_to_end)
    values["stage_ai_cost_usd"] = dict(parts.stage_ai_cost_usd)
    return SnapshotParts(**values)


def merge_stored(groups: Sequence[Sequence[Any]]) -> list[Any]:
    """Each group of ``StoredParts`` merged into one (as ``SnapshotParts.merge_all``), the
    digests of all groups in one batch, a stage or stage cost a row lacks counted as none;
    ValueError when a digest is inconsistent."""
    digests: list[list[PackedDigest]] = []
    for items in groups:
        digests += [[p.stages.get(stage, _NO_STAGE).latency for p in items]
                    for stage in PROCESSING_STAGES]  # fmt: skip
        digests.append([p.end_to_end for p in items])
    merged = iter(merger.merge_groups(digests))
    return [_merge_scalars(items, merged) for items in groups]


def _merge_scalars(items: Sequence[Any], merged: Any) -> Any:
    digests = [next(merged) for _ in range(len(PROCESSING_STAGES) + 1)]
    if not items:
        return StoredParts()
    columns = list(zip(*map(astuple, items), strict=True))  # each field's values, in order
    values: dict[str, Any] = {name: sum(columns[at]) for name, at in _ADDITIVE_AT}
    stages = columns[_STAGES_AT]
    values["stages"] = {
        stage: _merge_stage([s.get(stage, _NO_STAGE) for s in stages], digest)
        for stage, digest in zip(PROCESSING_STAGES, digests, strict=False)
    }
    values["end_to_end"] = digests[-1]
    costs = columns[_COSTS_AT]
    values["stage_ai_cost_usd"] = {
        stage: sum([c.get(stage, 0.0) for c in costs]) for stage in STAGES
    }
    return StoredParts(**values)


def _merge_stage(items: list[StoredStage], digest: PackedDigest) -> StoredStage:
    started, succeeded, failed, _, cost = zip(*map(astuple, items), strict=True)
    return StoredStage(sum(started), sum(succeeded), sum(failed), digest, sum(cost))
