"""Latency digest: bucket boundaries, quantile accuracy, merge laws, serialisation."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollup.digest import GAMMA, DigestBuilder, LatencyDigest, bucket_index, bucket_value


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@pytest.mark.parametrize(
    ("value", "index"),
    [(1.0, 0), (GAMMA, 1), (GAMMA * 1.000001, 2), (GAMMA**10, 10), (GAMMA**-3, -3), (0.5, -34)],
)
def test_digest_bucket_index_boundaries(value: float, index: int) -> None:
    assert bucket_index(value) == index
    assert GAMMA ** (index - 1) < value <= GAMMA**index * (1 + 1e-12)


def test_digest_exact_small_cases() -> None:
    digest = LatencyDigest.of([0.0, 0.0, 10.0, 20.0, 1000.0])
    assert (digest.count, digest.sum, digest.min, digest.max) == (5, 1030.0, 0.0, 1000.0)
    assert digest.zero_count == 2
    assert digest.quantile(0.2) == 0.0
    assert digest.quantile(0.4) == 0.0
    assert digest.quantile(0.6) == pytest.approx(10.0, rel=0.01)
    assert digest.quantile(1.0) == 1000.0  # clamped to max
    assert digest.avg == 206.0
    assert LatencyDigest.empty().quantile(0.5) == 0.0
    assert LatencyDigest.of([7.0]).quantile(0.99) == 7.0  # clamped to [min, max]


def test_digest_rejects_negative() -> None:
    with pytest.raises(ValueError, match="latency"):
        DigestBuilder().add(-1.0)


def test_digest_bucket_value_within_alpha_of_its_bucket() -> None:
    for index in (-50, 0, 1, 100, 1500):
        low, high, value = GAMMA ** (index - 1), GAMMA**index, bucket_value(index)
        assert abs(value - low) / low <= 0.01 + 1e-12
        assert abs(value - high) / high <= 0.01 + 1e-12


SAMPLERS = {
    "uniform": lambda r: r.uniform(0.1, 5000),
    "lognormal": lambda r: r.lognormvariate(6, 1.5),
    "pareto": lambda r: 10 * r.paretovariate(1.1),
}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(1, 3000),
    shape=st.sampled_from(sorted(SAMPLERS)),
)
def test_digest_quantiles_within_one_percent(seed: int, size: int, shape: str) -> None:
    rng = random.Random(seed)
    values = [SAMPLERS[shape](rng) for _ in range(size)]
    digest = LatencyDigest.of(values)
    for q in (0.5, 0.95, 0.99):
        truth = exact(values, q)
        assert abs(digest.quantile(q) - truth) <= 0.01 * truth + 1e-12


latencies = st.lists(st.floats(0, 1e7, allow_nan=False), max_size=200)


@settings(max_examples=80, deadline=None)
@given(a=latencies, b=latencies, c=latencies)
def test_digest_merge_associative_and_commutative(
    a: list[float], b: list[float], c: list[float]
) -> None:
    da, db, dc = LatencyDigest.of(a), LatencyDigest.of(b), LatencyDigest.of(c)
    left, right = da.merge(db).merge(dc), da.merge(db.merge(dc))
    swapped = dc.merge(da).merge(db)
    for other in (right, swapped):
        assert (left.count, left.min, left.max, left.zero_count) == (
            other.count, other.min, other.max, other.zero_count,
        )  # fmt: skip
        assert left.buckets == other.buckets
        assert left.sum == pytest.approx(other.sum, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(latencies, min_size=1, max_size=24))
def test_digest_merging_hours_equals_digest_of_all(chunks: list[list[float]]) -> None:
    merged = LatencyDigest.empty()
    for chunk in chunks:
        merged = merged.merge(LatencyDigest.of(chunk))
    whole = LatencyDigest.of([v for chunk in chunks for v in chunk])
    assert merged.buckets == whole.buckets
    assert (merged.count, merged.zero_count, merged.min, merged.max) == (
        whole.count, whole.zero_count, whole.min, whole.max,
    )  # fmt: skip
    assert merged.sum == pytest.approx(whole.sum, rel=1e-9)
    for q in (0.5, 0.95, 0.99):
        assert merged.quantile(q) == whole.quantile(q)


@given(values=latencies)
def test_digest_serialisation_round_trip(values: list[float]) -> None:
    digest = LatencyDigest.of(values)
    assert LatencyDigest.from_bytes(digest.to_bytes()) == digest


def test_digest_day_p95_is_not_the_mean_of_hourly_p95s() -> None:
    """23 quiet fast hours and one slow burst hour: the mean of hourly p95s is far from
    the day's p95, the merged digest is within 1 % of it."""
    rng = random.Random(7)
    hours = [[rng.uniform(90, 110) for _ in range(1000)] for _ in range(23)]
    hours.append([rng.uniform(9000, 11000) for _ in range(100)])
    day = [v for hour in hours for v in hour]
    mean_of_p95s = sum(exact(hour, 0.95) for hour in hours) / len(hours)
    truth = exact(day, 0.95)
    merged = LatencyDigest.empty()
    for hour in hours:
        merged = merged.merge(LatencyDigest.of(hour))
    assert abs(mean_of_p95s - truth) / truth > 3  # averaging percentiles is badly wrong
    assert abs(merged.quantile(0.95) - truth) <= 0.01 * truth
