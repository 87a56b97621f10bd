"""Mergeable latency digest (milliseconds): count, sum, min, max and log buckets with 1 %
relative accuracy. Bucket i covers (GAMMA^(i-1), GAMMA^i] ms; 0 ms has its own bucket."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import add

import msgspec

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_INV_LN_GAMMA = 1.0 / math.log(GAMMA)


def bucket_index(value_ms: float) -> int:
    """Index i with GAMMA^(i-1) < value <= GAMMA^i, for value > 0 (float error corrected)."""
    index = math.ceil(math.log(value_ms) * _INV_LN_GAMMA)
    if value_ms > GAMMA**index:
        index += 1
    elif value_ms <= GAMMA ** (index - 1):
        index -= 1
    return index


def bucket_value(index: int) -> float:
    """Representative of bucket ``index``: within ALPHA of every value in it."""
    return 2 * GAMMA**index / (GAMMA + 1)


@dataclass(frozen=True, slots=True)
class LatencyDigest:
    """Immutable digest. Buckets are dense: ``counts[k]`` is bucket ``offset + k``."""

    count: int = 0
    sum: float = 0.0
    min: float = 0.0
    max: float = 0.0
    zero_count: int = 0
    offset: int = 0
    counts: tuple[int, ...] = ()

    @classmethod
    def empty(cls) -> LatencyDigest:
        return _EMPTY

    @classmethod
    def of(cls, values: Iterable[float]) -> LatencyDigest:
        builder = DigestBuilder()
        for value in values:
            builder.add(value)
        return builder.build()

    @classmethod
    def from_buckets(
        cls,
        *,
        count: int,
        sum: float,
        min: float,
        max: float,
        zero_count: int,
        buckets: Mapping[int, int],
    ) -> LatencyDigest:
        """Digest from sparse bucket counts (e.g. aggregated in SQL)."""
        if not count:
            return _EMPTY
        if not buckets:
            return cls(count, sum, min, max, zero_count)
        low, high = min_max(buckets)
        dense = [0] * (high - low + 1)
        for index, n in buckets.items():
            dense[index - low] += n
        return cls(count, sum, min, max, zero_count, low, tuple(dense))

    @property
    def buckets(self) -> dict[int, int]:
        """Non-empty buckets, sparse."""
        return {self.offset + k: n for k, n in enumerate(self.counts) if n}

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def merge(self, other: LatencyDigest) -> LatencyDigest:
        """Exact merge: counts, sums and buckets add; min of mins, max of maxes."""
        return merge_all((self, other))

    def quantile(self, q: float) -> float:
        """Value at rank ceil(q * count) (at least 1), within 1 % of the exact one; 0 when
        empty. Reported as the bucket representative clamped to [min, max]."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = self.zero_count
        if rank <= seen:
            return 0.0
        for k, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return _clamp(bucket_value(self.offset + k), self.min, self.max)
        return self.max

    def to_bytes(self) -> bytes:
        return _encode(
            (self.count, self.sum, self.min, self.max, self.zero_count, self.offset, self.counts)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LatencyDigest:
        count, total, low, high, zero, offset, counts = _decode(data)
        if not count:
            return _EMPTY
        return cls(count, total, low, high, zero, offset, tuple(counts))

    def to_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "zero_count": self.zero_count,
            "buckets": {str(k): n for k, n in self.buckets.items()},
        }


_EMPTY = LatencyDigest()
_encode = msgspec.msgpack.encode
_decode = msgspec.msgpack.Decoder(tuple[int, float, float, float, int, int, list[int]]).decode


def min_max(buckets: Iterable[int]) -> tuple[int, int]:
    indexes = list(buckets)
    return min(indexes), max(indexes)


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def merge_all(digests: Iterable[LatencyDigest]) -> LatencyDigest:
    """Merge any number of digests in one pass (dense bucket arrays add element-wise)."""
    present = [d for d in digests if d.count]
    if not present:
        return _EMPTY
    if len(present) == 1:
        return present[0]
    with_buckets = [d for d in present if d.counts]
    counts: tuple[int, ...] = ()
    offset = 0
    if with_buckets:
        offset = min(d.offset for d in with_buckets)
        top = max(d.offset + len(d.counts) for d in with_buckets)
        dense = [0] * (top - offset)
        for d in with_buckets:
            start = d.offset - offset
            end = start + len(d.counts)
            dense[start:end] = map(add, dense[start:end], d.counts)
        counts = tuple(dense)
    return LatencyDigest(
        count=sum(d.count for d in present),
        sum=sum(d.sum for d in present),
        min=min(d.min for d in present),
        max=max(d.max for d in present),
        zero_count=sum(d.zero_count for d in present),
        offset=offset,
        counts=counts,
    )


class DigestBuilder:
    """Mutable accumulator for building one digest from many values quickly."""

    __slots__ = ("_buckets", "_count", "_max", "_min", "_sum", "_zero")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._zero = 0

    def add(self, value_ms: float) -> None:
        if value_ms < 0 or value_ms != value_ms:
            raise ValueError(f"latency must be a number >= 0, got {value_ms!r}")
        self._count += 1
        self._sum += value_ms
        self._min = value_ms if value_ms < self._min else self._min
        self._max = value_ms if value_ms > self._max else self._max
        if value_ms == 0:
            self._zero += 1
        else:
            index = bucket_index(value_ms)
            self._buckets[index] = self._buckets.get(index, 0) + 1

    def build(self) -> LatencyDigest:
        return LatencyDigest.from_buckets(
            count=self._count,
            sum=self._sum,
            min=self._min,
            max=self._max,
            zero_count=self._zero,
            buckets=self._buckets,
        )
