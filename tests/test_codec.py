"""Snapshot parts as stored: round trips, rows stored before the packed form, and the merge
of stored parts equal to ``SnapshotParts.merge_all``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from exporter.catalog import PROCESSING_STAGES, STAGES
from rollup import codec
from rollup.digest import LatencyDigest
from rollup.parts import SnapshotParts, StageParts, derived

GOLDEN = Path(__file__).parent / "golden"


def legacy_expected() -> SnapshotParts:
    """What ``golden/legacy_parts.msgpack`` holds: written by voxmon before the packed form
    (a msgpack map whose digests are maps with the counts as lists of ints)."""
    e2e = LatencyDigest.of([0.0, 0.0004, 12.5, 12.6, 480.0, 480.0, 3_600_000.0])
    transcription = LatencyDigest.of([900.0 + 7 * i for i in range(300)])
    costs = dict.fromkeys(STAGES, 0.0) | {"transcription": 0.125, "claims_extraction": 0.125}
    return SnapshotParts(
        artifacts_received=7, artifacts_completed=5, artifacts_failed=1,
        stages={"transcription": StageParts(9, 300, 2, transcription, 0.125),
                "claims_extraction": StageParts(3, 0, 1),
                "entity_resolution": StageParts(), "draft_generation": StageParts()},
        end_to_end=e2e, transcript_confidence_count=4, transcript_confidence_sum=3.5,
        ai_cost_usd=0.25, stage_ai_cost_usd=costs,
    )  # fmt: skip


def test_codec_legacy_rows_still_decode() -> None:
    data = (GOLDEN / "legacy_parts.msgpack").read_bytes()
    assert data[:2] != codec.MARK
    expected = legacy_expected()
    assert codec.decode_parts(data) == expected
    assert codec.unstored(codec.decode_stored(data)) == expected
    assert derived(codec.decode_stored(data)) == derived(expected)


def test_codec_round_trip_in_the_packed_form() -> None:
    parts = legacy_expected()
    data = codec.encode_parts(parts)
    assert data[:2] == codec.MARK
    assert codec.decode_parts(data) == parts
    assert codec.decode_stored(data) == codec.stored(parts)
    assert len(data) < len((GOLDEN / "legacy_parts.msgpack").read_bytes())


def random_parts(rng: random.Random) -> SnapshotParts:
    def digest() -> LatencyDigest:
        n = rng.choice([0, 1, 5, 300])
        return LatencyDigest.of(rng.lognormvariate(6, 2) * (rng.random() > 0.1) for _ in range(n))

    stages = {s: StageParts(rng.randrange(9), rng.randrange(9), rng.randrange(3), digest(),
                            rng.random()) for s in PROCESSING_STAGES}  # fmt: skip
    return SnapshotParts(
        artifacts_received=rng.randrange(100), artifacts_failed=rng.randrange(5), stages=stages,
        end_to_end=digest(), claim_confidence_sum=rng.random(), ai_cost_usd=rng.random(),
        stage_ai_cost_usd={s: rng.random() for s in STAGES},
    )  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), sizes=st.lists(st.integers(0, 24), min_size=1, max_size=4))
def test_codec_merge_stored_equals_merge_all(seed: int, sizes: list[int]) -> None:
    rng = random.Random(seed)
    groups = [[random_parts(rng) for _ in range(n)] for n in sizes]
    stored = [[codec.decode_stored(codec.encode_parts(p)) for p in group] for group in groups]
    merged = codec.merge_stored(stored)
    assert [codec.unstored(m) for m in merged] == [SnapshotParts.merge_all(g) for g in groups]


def test_codec_malformed_and_inconsistent_rows_are_refused() -> None:
    data = codec.encode_parts(legacy_expected())
    with pytest.raises(ValueError, match="malformed snapshot parts"):
        codec.decode_parts(data[:-3])
    with pytest.raises(ValueError, match="malformed snapshot parts"):
        codec.decode_parts(b"\x81\xa1x")
    bad = codec.stored(legacy_expected())
    broken = replace(bad, end_to_end=replace(bad.end_to_end, count=99))
    with pytest.raises(ValueError, match="inconsistent latency digest: count 99"):
        codec.decode_parts(codec.encode_stored(broken))
    with pytest.raises(ValueError, match="inconsistent latency digest: count 99"):
        codec.merge_stored([[broken, bad]])


def test_codec_merge_stored_reads_a_row_without_some_stages_as_none_in_them() -> None:
    """A row stored before a stage (or a stage cost) existed merges as zeros there, as a
    missing field does, instead of failing the daily job and every report with a KeyError."""
    parts = legacy_expected()
    full = codec.stored(parts)
    short = replace(full, stages={"transcription": full.stages["transcription"]},
                    stage_ai_cost_usd={"transcription": 0.125})  # fmt: skip
    (merged,) = codec.merge_stored([[short, full]])
    assert merged.stages["claims_extraction"] == full.stages["claims_extraction"]
    assert merged.stages["transcription"].started == 2 * parts.stages["transcription"].started
    assert merged.stage_ai_cost_usd["claims_extraction"] == 0.125
    assert merged.stage_ai_cost_usd["transcription"] == 0.25
