"""Quantiles the way each voxmon surface defines them, for the latency accuracy tests:
the exact nearest-rank value and Prometheus' ``histogram_quantile`` over classic buckets."""

from __future__ import annotations

import math
from collections.abc import Sequence


def exact(values: Sequence[float], q: float) -> float:
    """The value at rank ceil(q * n) (at least 1), as the digest defines a quantile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` (promql/quantile.go, classic buckets) over
    ``(upper bound, cumulative count)`` pairs sorted by bound, the last one +Inf: linear
    interpolation inside the bucket holding rank ``q * total``, the first bucket starting
    at 0, a rank in +Inf answering the highest finite bound."""
    total = buckets[-1][1]
    rank = q * total
    index = next(i for i, (_, cumulative) in enumerate(buckets) if cumulative >= rank)
    if index == len(buckets) - 1:
        return buckets[-2][0]
    if index == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, below = (0.0, 0.0) if index == 0 else buckets[index - 1]
    end, count = buckets[index][0], buckets[index][1] - below
    return start + (end - start) * (rank - below) / count


def relative_error(estimate: float, truth: float) -> float:
    return abs(estimate - truth) / truth
