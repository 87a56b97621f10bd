"""Latency digest: bucket boundaries, quantile accuracy, merge laws, serialisation."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
from collections.abc import Callable

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollup.digest import (
    FLOOR_INDEX,
    GAMMA,
    MIN_MS,
    DigestBuilder,
    LatencyDigest,
    bucket_index,
    bucket_value,
)

TINY, HUGE = sys.float_info.min, sys.float_info.max
ACCURACY = 0.01 * (1 + 1e-9)  # 1 %, plus float rounding of the bucket representative


def exact(values: list[float], q: float) -> float:
    """Brute-force nearest-rank quantile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def builder_index(value: float, bulk: bool) -> int:
    builder = DigestBuilder()
    if bulk:
        builder.extend([value])
    else:
        builder.add(value)
    (index,) = builder.build().buckets
    return index


# --- buckets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "index"),
    [
        (1.0, 0),
        (GAMMA, 1),
        (math.nextafter(GAMMA, 2.0), 2),
        (math.nextafter(GAMMA, 0.0), 1),
        (GAMMA**10, 10),
        (GAMMA**-3, -3),
        (0.5, -34),
        (0.001, -345),
        (1e-6, -690),
        (86_400_000.0, 914),
        (HUGE, 35488),
    ],
)
def test_digest_bucket_index_boundaries(value: float, index: int) -> None:
    assert bucket_index(value) == index
    floored = max(index, FLOOR_INDEX)  # under MIN_MS a digest counts in the floor's bucket
    assert builder_index(value, bulk=False) == builder_index(value, bulk=True) == floored


def test_digest_bucket_index_every_power_of_gamma_lands_in_its_own_bucket() -> None:
    powers = [i for i in range(-35_418, 35_488)]  # every GAMMA**i between TINY and HUGE
    assert GAMMA**-35_419 < TINY <= GAMMA**-35_418 and GAMMA**35_487 <= HUGE < GAMMA**35_487 * GAMMA
    assert [i for i in powers if bucket_index(GAMMA**i) != i] == []
    assert [i for i in powers if bucket_index(math.nextafter(GAMMA**i, 0)) != i] == []
    assert [i for i in powers if bucket_index(math.nextafter(GAMMA**i, HUGE)) != i + 1] == []


@settings(max_examples=500)
@given(value=st.floats(TINY, HUGE))
def test_digest_bucket_index_matches_definition(value: float) -> None:
    index = bucket_index(value)
    assert GAMMA ** (index - 1) < value <= (GAMMA**index if index < 35488 else math.inf)
    floored = max(index, FLOOR_INDEX)
    assert builder_index(value, bulk=False) == builder_index(value, bulk=True) == floored


@pytest.mark.parametrize("index", [-345, -50, 0, 1, 100, 914, 1500])
def test_digest_bucket_value_within_alpha_of_its_bucket(index: int) -> None:
    low, high, value = GAMMA ** (index - 1), GAMMA**index, bucket_value(index)
    assert low < value < high
    assert (value - low) / low == pytest.approx(0.01, rel=1e-9)
    assert (high - value) / high == pytest.approx(0.01, rel=1e-9)


# --- exact cases -----------------------------------------------------------------------

FIVE = [0.0, 0.0, 10.0, 20.0, 1000.0]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        (FIVE, 0.0, 0.0),  # rank 1
        (FIVE, 0.4, 0.0),  # rank 2: still the zero bucket
        (FIVE, 0.41, bucket_value(bucket_index(10.0))),  # rank 3
        (FIVE, 0.8, bucket_value(bucket_index(20.0))),
        (FIVE, 1.0, 1000.0),  # the representative is above max: clamped
        ([7.0], 0.5, 7.0),  # clamped to [min, max] = [7, 7]
        ([100.0, 200.0], 0.5, bucket_value(bucket_index(100.0))),
        ([100.0, 200.0], 0.51, bucket_value(bucket_index(200.0))),
        ([100.0, 100.2], 1.0, 100.2),  # one bucket, representative 100.49 above max
        ([100.6, 100.7], 0.0, 100.6),  # one bucket, representative below min
        ([0.001, 0.002, 0.003], 0.5, bucket_value(bucket_index(0.002))),
        ([], 0.99, 0.0),
    ],
)
def test_digest_quantile_exact_cases(values: list[float], q: float, expected: float) -> None:
    assert LatencyDigest.of(values).quantile(q) == expected


def test_digest_parts_of_a_small_sample() -> None:
    digest = LatencyDigest.of(FIVE)
    assert (digest.count, digest.sum, digest.min, digest.max) == (5, 1030.0, 0.0, 1000.0)
    assert digest.zero_count == 2
    assert digest.buckets == {116: 1, 150: 1, 346: 1}
    assert digest.avg == 206.0
    assert json.loads(json.dumps(digest.to_dict())) == {
        "count": 5, "sum": 1030.0, "min": 0.0, "max": 1000.0, "zero_count": 2,
        "buckets": {"116": 1, "150": 1, "346": 1},
    }  # fmt: skip


def test_digest_empty_is_zero_and_the_merge_identity() -> None:
    empty = LatencyDigest.empty()
    assert (empty.count, empty.sum, empty.min, empty.max, empty.avg) == (0, 0.0, 0.0, 0.0, 0.0)
    assert empty.buckets == {}
    assert LatencyDigest.of([]) == DigestBuilder().build() == empty
    one = LatencyDigest.of([3.0])
    assert empty.merge(one) == one.merge(empty) == one
    assert LatencyDigest.merge_all([]) == empty


@pytest.mark.parametrize("bad", [-1.0, -1e-300, math.nan, math.inf, -math.inf])
def test_digest_rejects_values_that_are_not_latencies(bad: float) -> None:
    builder = DigestBuilder()
    builder.add(5.0)
    with pytest.raises(ValueError, match="latency"):
        builder.add(bad)
    with pytest.raises(ValueError, match="latency"):
        builder.extend([1.0, bad, 2.0])
    assert builder.build() == LatencyDigest.of([5.0, 1.0])  # values before the bad one


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan])
def test_digest_quantile_rejects_q_outside_0_1(q: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        LatencyDigest.of([1.0]).quantile(q)


@pytest.mark.parametrize(
    "fields",
    [
        {"count": 2, "min": 1.0, "max": 1.0, "offset": 0, "counts": (1,)},
        {"count": 2, "min": 1.0, "max": 2.0, "offset": 0, "counts": (2, 0)},
        {"count": 1, "min": 2.0, "max": 1.0, "offset": 0, "counts": (1,)},
        {"count": 0, "offset": 3},
        {"count": 0, "sum": 1.0},
    ],
)
def test_digest_rejects_inconsistent_parts(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="inconsistent latency digest"):
        LatencyDigest(**fields)  # type: ignore[arg-type]


def test_digest_from_buckets_ignores_zero_counts() -> None:
    parts = {"count": 3, "sum": 3.0, "min": 0.0, "max": 2.0, "zero_count": 1}
    sparse = LatencyDigest.from_buckets(**parts, buckets={0: 1, 35: 1})  # type: ignore[arg-type]
    padded = LatencyDigest.from_buckets(
        **parts,  # type: ignore[arg-type]
        buckets={-4: 0, 0: 1, 35: 1, 40: 0},
    )
    assert sparse == padded == LatencyDigest.of([0.0, 1.0, 2.0]).merge(LatencyDigest.empty())


# --- accuracy (hypothesis, against the brute-force nearest rank) ------------------------

SAMPLERS: dict[str, Callable[[random.Random], float]] = {
    "uniform": lambda r: r.uniform(0.1, 5000),
    "lognormal": lambda r: r.lognormvariate(6, 1.5),
    "pareto": lambda r: 10 * r.paretovariate(1.1),
    "tiny": lambda r: r.uniform(0.0005, 0.01),
    "with-zeros": lambda r: 0.0 if r.random() < 0.3 else r.expovariate(0.01),
}


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(1, 3000),
    shape=st.sampled_from(sorted(SAMPLERS)),
)
def test_digest_quantiles_within_one_percent(seed: int, size: int, shape: str) -> None:
    """Within 1 % from MIN_MS up; under it (the "tiny" shape reaches 0.5 µs), within MIN_MS
    (docs/decisions/digest-floor.md)."""
    rng = random.Random(seed)
    values = [SAMPLERS[shape](rng) for _ in range(size)]
    digest = LatencyDigest.of(values)
    for q in (0.5, 0.95, 0.99):
        truth = exact(values, q)
        bound = ACCURACY * truth if truth >= MIN_MS else MIN_MS
        assert abs(digest.quantile(q) - truth) <= bound


@settings(max_examples=200)
@given(values=st.lists(st.floats(0, 1e9), min_size=1, max_size=50), q=st.floats(0, 1))
def test_digest_any_quantile_within_one_percent(values: list[float], q: float) -> None:
    """Within 1 % from MIN_MS up; under it, within MIN_MS (the floor's bucket)."""
    truth = exact(values, q)
    bound = ACCURACY * truth if truth >= MIN_MS else MIN_MS
    assert abs(LatencyDigest.of(values).quantile(q) - truth) <= bound


# --- merge laws -------------------------------------------------------------------------

latencies = st.lists(st.floats(0, 1e7), max_size=200)


def without_sum(digest: LatencyDigest) -> LatencyDigest:
    """The digest with ``sum`` zeroed: float addition order makes sums differ in the ulps."""
    return dataclasses.replace(digest, sum=0.0)


@settings(max_examples=100, deadline=None)
@given(a=latencies, b=latencies, c=latencies)
def test_digest_merge_associative_and_commutative(
    a: list[float], b: list[float], c: list[float]
) -> None:
    da, db, dc = LatencyDigest.of(a), LatencyDigest.of(b), LatencyDigest.of(c)
    left = da.merge(db).merge(dc)
    for other in (da.merge(db.merge(dc)), dc.merge(da).merge(db), db.merge(dc).merge(da)):
        assert without_sum(left) == without_sum(other)
        assert left.sum == pytest.approx(other.sum, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(chunks=st.lists(latencies, min_size=1, max_size=24))
def test_digest_merging_chunks_equals_digest_of_all(chunks: list[list[float]]) -> None:
    whole = LatencyDigest.of([v for chunk in chunks for v in chunk])
    pieces = [LatencyDigest.of(chunk) for chunk in chunks]
    sequential = LatencyDigest.empty()
    for piece in pieces:
        sequential = sequential.merge(piece)
    for merged in (sequential, LatencyDigest.merge_all(pieces)):
        assert without_sum(merged) == without_sum(whole)
        assert merged.sum == pytest.approx(whole.sum, rel=1e-9)
        for q in (0.5, 0.95, 0.99):
            assert merged.quantile(q) == whole.quantile(q)


def test_digest_day_p95_is_not_the_mean_of_hourly_p95s() -> None:
    """23 quiet fast hours and one slow burst hour: the mean of hourly p95s is far from
    the day's p95, the merged digest is within 1 % of it."""
    rng = random.Random(7)
    hours = [[rng.uniform(90, 110) for _ in range(1000)] for _ in range(23)]
    hours.append([rng.uniform(9000, 11000) for _ in range(2000)])
    day = [v for hour in hours for v in hour]
    truth = exact(day, 0.95)
    mean_of_p95s = sum(exact(hour, 0.95) for hour in hours) / len(hours)
    merged = LatencyDigest.merge_all(LatencyDigest.of(hour) for hour in hours)
    assert 9000 <= truth <= 11000  # the burst is more than 5 % of the day
    assert mean_of_p95s < 600  # averaging percentiles is wrong by a factor of 15+
    assert abs(merged.quantile(0.95) - truth) <= ACCURACY * truth
    assert merged.count == len(day)


# --- serialisation ----------------------------------------------------------------------


@given(values=latencies)
def test_digest_serialisation_round_trip(values: list[float]) -> None:
    digest = LatencyDigest.of(values)
    assert LatencyDigest.from_bytes(digest.to_bytes()) == digest
    native = msgspec.msgpack.decode(msgspec.msgpack.encode(digest), type=LatencyDigest)
    assert native == digest  # the form snapshot parts are stored in


def test_digest_serialisation_is_compact() -> None:
    rng = random.Random(1)
    digest = LatencyDigest.of(rng.lognormvariate(7, 1) for _ in range(10_000))
    assert len(digest.buckets) > 250
    assert len(digest.to_bytes()) < 2 * len(digest.buckets) + 64


@pytest.mark.parametrize(
    "data",
    [b"", b"\x93\x01\x02\x03", LatencyDigest.of([1.0]).to_bytes()[:-1]],
)
def test_digest_from_bytes_rejects_garbage(data: bytes) -> None:
    with pytest.raises(ValueError):
        LatencyDigest.from_bytes(data)


def test_digest_from_bytes_rejects_inconsistent_parts() -> None:
    data = msgspec.msgpack.encode((3, 1.0, 1.0, 1.0, 0, 0, [1]))
    with pytest.raises(ValueError, match="count 3"):
        LatencyDigest.from_bytes(data)


# --- the floor -------------------------------------------------------------------------


def test_digest_tiny_durations_land_in_the_floor_bucket_so_buckets_stay_few() -> None:
    """A subnormal or 1e-9 ms would otherwise index bucket -34,000: a dense digest would
    hold tens of thousands of counts. Below MIN_MS (1 µs) values count in its bucket."""
    digest = LatencyDigest.of([1e-300, 1e-9, 0.5, 3600.0])
    assert MIN_MS == 0.001 and bucket_index(MIN_MS) == FLOOR_INDEX == -345
    assert digest.buckets == {-345: 2, -34: 1, 410: 1}
    assert (digest.offset, len(digest.counts)) == (-345, 756)
    assert (digest.count, digest.min, digest.max) == (4, 1e-300, 3600.0)
    assert digest.quantile(0.5) == bucket_value(-345)  # 2nd value: within 1 % of the floor
