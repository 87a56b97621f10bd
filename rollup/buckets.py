"""Log-bucket math of the latency digest (milliseconds): bucket i covers
(GAMMA^(i-1), GAMMA^i] ms with 1 % relative accuracy; durations under ``MIN_MS`` count in
``FLOOR_INDEX``, the floor's bucket."""

from __future__ import annotations

import math

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
INV_LN_GAMMA = 1.0 / math.log(GAMMA)
MIN_MS = 0.001
"""The floor: a duration under 1 µs counts in 1 µs's bucket, so a subnormal cannot make a
dense digest span 37,000 buckets (at most 1,430 up to 30 days). Sum, min and max stay exact;
quantiles are within 1 % from 1 µs up, within 1 µs below. SQL bucketing takes the same."""
# ceil(log(v) / log(GAMMA)) is off by at most ~1e-11 for any finite v: only a result this
# close to an integer can be on the wrong side of a bucket edge and needs the exact check.
EDGE = 1e-9


def bucket_index(value_ms: float) -> int:
    """Index i with GAMMA^(i-1) < value <= GAMMA^i, for a finite value > 0 (float error
    corrected, so a value equal to the float GAMMA**i lands in bucket i)."""
    index = math.ceil(math.log(value_ms) * INV_LN_GAMMA)
    if value_ms > _power(index):
        index += 1
    elif value_ms <= _power(index - 1):
        index -= 1
    return index


def digest_index(value_ms: float) -> int:
    """The bucket a digest counts ``value_ms`` (finite, > 0) in: ``bucket_index`` of the
    value (the exact check only near an edge), or ``FLOOR_INDEX`` under ``MIN_MS``."""
    if value_ms < MIN_MS:
        return FLOOR_INDEX
    x = math.log(value_ms) * INV_LN_GAMMA
    index = math.ceil(x)
    return index if EDGE < index - x < 1.0 - EDGE else bucket_index(value_ms)


FLOOR_INDEX = -345
"""The lowest bucket a digest holds: ``bucket_index(MIN_MS)`` (a test pins it)."""


def bucket_value(index: int) -> float:
    """Representative of bucket ``index``: within ALPHA of every value in it; infinite for
    the largest float's bucket and above (quantiles clamp it to the digest's max)."""
    try:
        return 2 * GAMMA**index / (GAMMA + 1)
    except OverflowError:
        return math.inf


def _power(index: int) -> float:
    try:
        return GAMMA**index
    except OverflowError:  # upper edge of the top bucket, past the largest float
        return math.inf
