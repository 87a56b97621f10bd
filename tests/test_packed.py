"""Packed digests (the stored form): round trips, rows stored before it, batch merges equal to
``LatencyDigest.merge_all``, quantiles equal to ``LatencyDigest.quantile``, and malformed
bytes refused with the reason."""

from __future__ import annotations

import gc
import math
import random
import tracemalloc
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from rollup import merger, packed
from rollup.digest import LatencyDigest
from rollup.packed import EMPTY, PackedDigest

GOLDEN = Path(__file__).parent / "golden"
LEGACY_VALUES = [0.0, 0.0004, 12.5, 12.6, 480.0, 480.0, 3_600_000.0]
"""The durations of ``golden/legacy_digest.msgpack``, written by voxmon before the packed
form (a msgpack array of 7 with the counts as a list of ints)."""

latencies = st.lists(st.floats(0, 1e7), max_size=200)


def big(counts: dict[int, int], zero: int = 0) -> LatencyDigest:
    """A digest with given (possibly huge) bucket counts, for the wider widths."""
    total = sum(counts.values()) + zero
    return LatencyDigest.from_buckets(count=total, sum=float(total), min=0.5, max=9.0,
                                      zero_count=zero, buckets=counts)  # fmt: skip


def test_packed_width_is_the_narrowest_that_holds_the_largest_count() -> None:
    assert [big({3: n}).packed().width for n in (255, 256, 65_536, 1 << 32)] == [1, 2, 4, 8]
    assert big({3: 1, 5: 300}).packed().counts == b"\x01\x00\x00\x00\x2c\x01"


@given(values=latencies)
def test_packed_round_trip(values: list[float]) -> None:
    digest = LatencyDigest.of(values)
    assert LatencyDigest.from_packed(digest.packed()) == digest
    assert LatencyDigest.from_bytes(digest.to_bytes()) == digest
    assert packed.decode(digest.to_bytes()) == digest.packed()


def test_packed_legacy_digest_bytes_still_decode() -> None:
    data = (GOLDEN / "legacy_digest.msgpack").read_bytes()
    assert data[:1] == packed.LEGACY_MARK
    expected = LatencyDigest.of(LEGACY_VALUES)
    assert LatencyDigest.from_bytes(data) == expected
    assert packed.decode_any(data) == expected.packed()
    new = expected.to_bytes()
    assert packed.decode_run(3, new + data + new) == [expected.packed()] * 3


@settings(max_examples=100, deadline=None)
@given(chunks=st.lists(latencies, max_size=24), seed=st.integers(0, 2**32))
def test_packed_merge_equals_merge_of_the_digests(chunks: list[list[float]], seed: int) -> None:
    digests = [LatencyDigest.of(chunk) for chunk in chunks]
    rng = random.Random(seed)
    digests += [big({rng.randrange(-345, 900): rng.choice([1, 300, 70_000, 1 << 33])})
                for _ in range(rng.randrange(3))]  # fmt: skip
    (merged,) = merger.merge_groups([[d.packed() for d in digests]])
    assert merged == LatencyDigest.merge_all(digests).packed()  # sum too: same order
    assert LatencyDigest.from_packed(merged) == LatencyDigest.merge_all(digests)


def test_packed_merge_of_many_groups_at_once() -> None:
    a, b = LatencyDigest.of([1.0, 2.0, 0.0]), LatencyDigest.of([5000.0])
    groups = [[], [EMPTY, EMPTY], [a.packed()], [a.packed(), EMPTY, b.packed()]]
    assert merger.merge_groups(groups) == [EMPTY, EMPTY, a.packed(), a.merge(b).packed()]


@settings(max_examples=100, deadline=None)
@given(
    groups=st.lists(st.lists(st.lists(st.floats(0, 1e7), max_size=30), max_size=5), max_size=9),
    size=st.sampled_from([None, 1, 3]),
)
def test_packed_merge_of_many_groups_equals_each_groups_merge(
    groups: list[list[list[float]]], size: int | None
) -> None:
    """Groups of as many digests each (summed as one block) or of any number (one sum per
    group), some digests empty or without buckets: each group's merge is its own."""
    if size is not None:
        groups = [(g + [[7.0]] * size)[:size] for g in groups]
    digests = [[LatencyDigest.of(values) for values in group] for group in groups]
    merged = merger.merge_groups([[d.packed() for d in group] for group in digests])
    assert merged == [LatencyDigest.merge_all(group).packed() for group in digests]


@pytest.mark.parametrize("sizes", [[300, 300], [300, 1, 2]])
def test_packed_merge_of_many_full_one_byte_digests_counts_exactly(sizes: list[int]) -> None:
    """Sums of one-byte counts are taken in 16 bits only where they cannot wrap: 300
    digests of 255 in one bucket add up to 76,500, in groups of one size or of several."""
    full = big({40: 255, 41: 1})
    groups = [[full] * size for size in sizes]
    merged = merger.merge_groups([[d.packed() for d in g] for g in groups])
    assert merged == [LatencyDigest.merge_all(g).packed() for g in groups]
    assert LatencyDigest.from_packed(merged[0]).buckets == {40: 76_500, 41: 300}


def test_packed_merge_of_wide_two_byte_digests_counts_exactly() -> None:
    """Counts of two bytes over more than 65,536 buckets could add past 32 bits in a row:
    those rows are summed in 64 bits, and the merge stays exact."""
    wide = big({packed.LOWEST + k: 65_535 for k in range(70_001)}, zero=3)
    other = big({packed.LOWEST + 1: 300})
    groups = [[wide, other, wide], [other], [wide]]
    merged = merger.merge_groups([[d.packed() for d in g] for g in groups])
    assert merged == [LatencyDigest.merge_all(g).packed() for g in groups]
    assert merged[0].count == 2 * (70_001 * 65_535 + 3) + 300  # a row: 4.6e9 > 2**32
    assert (merged[0].width, merged[2].width) == (4, 2)


@settings(max_examples=200, deadline=None)
@given(values=latencies, qs=st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_packed_quantiles_equal_the_digest_quantiles(values: list[float], qs: list[float]) -> None:
    digest = LatencyDigest.of(values)
    assert digest.packed().quantiles(qs) == [digest.quantile(q) for q in qs]
    assert digest.packed().avg == digest.avg


GOOD = LatencyDigest.of([1.0, 2.0, 2.0, 40.0]).packed()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (replace(GOOD, width=3), "at width 3"),
        (replace(GOOD, width=8), "186 count bytes at width 8"),
        (replace(GOOD, count=5), "count 5 != zero_count 0"),
        (replace(GOOD, counts=GOOD.counts + b"\x00"), "no zeros at either end"),
        (replace(GOOD, counts=b"\x00" + GOOD.counts[1:]), "count 4 != zero_count"),
        (replace(GOOD, min=50.0), "need 0 <= min <= max"),
        (replace(GOOD, zero_count=-1, count=3), "count 3 != zero_count -1"),
        (replace(EMPTY, offset=7), "offset without buckets"),
        (replace(EMPTY, sum=1.0), "an empty digest has sum, min and max 0"),
        (replace(GOOD, offset=10**6), "bucket indexes must be in"),
        (replace(GOOD, offset=1 << 63), "bucket indexes must be in"),
        (replace(GOOD, offset=-(10**6)), "bucket indexes must be in"),
        (replace(EMPTY, width=2, counts=b"\x01\x00"), "count 0 != zero_count 0"),
        (replace(GOOD, sum=math.nan), "need sum >= 0, got nan"),
        (replace(GOOD, sum=-1.0), "need sum >= 0, got -1.0"),
    ],
)
def test_packed_inconsistent_digests_are_refused_with_the_reason(
    bad: PackedDigest, reason: str
) -> None:
    """By every reader: one digest, a batch merge (among good ones), the stored bytes."""
    pattern = f"inconsistent latency digest: .*{reason}"
    with pytest.raises(ValueError, match=pattern):
        packed.check(bad)
    with pytest.raises(ValueError, match=pattern):
        merger.merge_groups([[GOOD], [GOOD, bad, GOOD]])
    with pytest.raises(ValueError, match=pattern):
        LatencyDigest.from_bytes(packed.encode(bad))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x98\x01", packed.encode(GOOD)[:-1], msgspec.msgpack.encode([1, 2, 3])],
)
def test_packed_malformed_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="malformed latency digest"):
        packed.decode(data)
    with pytest.raises(ValueError, match="malformed latency digest"):
        packed.decode_run(2, packed.encode(GOOD) + data)


def test_packed_merge_refuses_counts_past_the_widest_width() -> None:
    huge = big({1: (1 << 64) - 1}).packed()
    with pytest.raises(ValueError, match="past 2\\*\\*64"):
        merger.merge_groups([[huge, huge]])
    with pytest.raises(ValueError, match="bucket counts must be in"):
        packed.pack_counts([1 << 64])


def test_packed_quantiles_of_many_equal_each_digest_quantiles() -> None:
    rng = random.Random(3)
    digests = [LatencyDigest.of(rng.lognormvariate(5, 2) for _ in range(n)) for n in range(40)]
    digests += [big({-345: 5, 2000: 1 << 40}, zero=3), LatencyDigest.of([0.0, 0.0])]
    qs = [0.0, 0.5, 0.95, 0.99, 1.0]
    got = merger.quantiles_of([d.packed() for d in digests], qs)
    assert got == [[d.quantile(q) for q in qs] for d in digests]
    with pytest.raises(ValueError, match="inconsistent latency digest: count 5"):
        merger.quantiles_of([GOOD, replace(GOOD, count=5)], qs)


def test_packed_quantiles_at_the_extremes_equal_the_digest_quantiles() -> None:
    """Counts whose top rank rounds past 2**64 - 1 (q * count as a float), and the largest
    float's bucket (its representative is past the largest float): every reader answers as
    ``LatencyDigest.quantile`` does, without an overflow."""
    digests = [big({1: (1 << 64) - 1}), big({-345: 1, 3: (1 << 64) - 2}),
               LatencyDigest.of([1.7976931348623157e308, 1.0])]  # fmt: skip
    qs = [0.0, 0.5, 1.0]
    want = [[d.quantile(q) for q in qs] for d in digests]
    assert want[2] == [1.0, 1.0, 1.7976931348623157e308]
    assert [d.packed().quantiles(qs) for d in digests] == want
    assert merger.quantiles_of([d.packed() for d in digests], qs) == want


def test_packed_merge_drops_empty_digests_of_any_width() -> None:
    """A consistent empty digest merges as nothing, whatever width it claims."""
    empty = replace(EMPTY, width=4)
    assert packed.check(empty) is empty
    assert merger.merge_groups([[empty, GOOD, empty], [empty]]) == [GOOD, EMPTY]
    assert merger.quantiles_of([empty, GOOD], [0.5]) == [[0.0], [GOOD.quantile(0.5)]]


def test_packed_one_wide_digest_does_not_widen_every_groups_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A row stored before the 1 µs floor may hold a bucket tens of thousands below the
    others: the batch splits instead of giving each of its groups a row that wide (201
    groups would take 116 MB of sums here), and the results stay exact."""
    monkeypatch.setattr(merger, "MAX_CELLS", 1 << 18, raising=False)
    qs = [0.5, 0.99, 1.0]
    wide = big({packed.LOWEST: 1, 34_000: 1})
    usual = LatencyDigest.of([0.5, 12.0, 3_600_000.0])
    groups = [[usual] * 3 for _ in range(200)] + [[wide, usual]]
    tracemalloc.start()
    try:
        merged = merger.merge_groups([[d.packed() for d in g] for g in groups])
        quantiles = merger.quantiles_of([d.packed() for d in [usual] * 200 + [wide]], qs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert merged == [LatencyDigest.merge_all(g).packed() for g in groups]
    assert quantiles == [usual.quantiles(qs)] * 200 + [wide.quantiles(qs)]
    assert peak < 32 << 20


def test_packed_merge_of_thousands_of_digests_leaves_the_cycle_collector_idle() -> None:
    """The merge allocates a few containers per batch, not one per digest: 90 digests for
    each of 128 orgs (two batches, as the org breakdown merges them) start no collection
    at the default threshold (a tuple per digest started 29)."""
    digest = LatencyDigest.of([float(ms) for ms in range(1, 400, 7)]).packed()
    groups = [[digest] * 90 for _ in range(128)]
    merger.merge_groups(groups)  # warm: imports and caches
    started: list[int] = []
    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(700, 10, 10)
    gc.callbacks.append(collections := lambda phase, _: started.append(phase == "start"))
    try:
        merged = merger.merge_groups(groups)
    finally:
        gc.callbacks.remove(collections)
        gc.set_threshold(*thresholds)
    whole = LatencyDigest.merge_all([LatencyDigest.from_packed(digest)] * 90)
    assert merged[0] == merged[-1] == whole.packed()
    assert sum(started) == 0
