"""Mergeable latency digest (milliseconds): count, sum, min, max and log buckets with 1 %
relative accuracy. Bucket i covers (GAMMA^(i-1), GAMMA^i] ms; 0 ms has its own bucket, and
durations under ``MIN_MS`` count in ``MIN_MS``'s bucket (the floor)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import add

from rollup.buckets import ALPHA as ALPHA
from rollup.buckets import EDGE, INV_LN_GAMMA, digest_index
from rollup.buckets import FLOOR_INDEX as FLOOR_INDEX
from rollup.buckets import GAMMA as GAMMA
from rollup.buckets import MIN_MS as MIN_MS
from rollup.buckets import bucket_index as bucket_index
from rollup.buckets import bucket_value as bucket_value
from rollup.packed import PackedDigest, decode_any, encode, pack_counts, summary_problem


@dataclass(frozen=True, slots=True)
class LatencyDigest:
    """Immutable digest with value equality. Buckets are stored dense, trimmed of zeros at
    both ends: ``counts[k]`` is bucket ``offset + k``; ``buckets`` is the sparse view."""

    count: int = 0
    sum: float = 0.0
    min: float = 0.0
    max: float = 0.0
    zero_count: int = 0
    offset: int = 0
    counts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        problem = _inconsistency(self)
        if problem:
            raise ValueError(f"inconsistent latency digest: {problem}")

    @classmethod
    def empty(cls) -> LatencyDigest:
        """The digest of no values; the identity of ``merge``."""
        return _EMPTY

    @classmethod
    def of(cls, values: Iterable[float]) -> LatencyDigest:
        """Digest of ``values`` (ms, finite, >= 0)."""
        builder = DigestBuilder()
        builder.extend(values)
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
        """Digest from sparse bucket counts (e.g. aggregated in SQL); zero counts ignored.
        ValueError when the parts are inconsistent."""
        if not count and not zero_count and not any(buckets.values()):
            return _EMPTY  # a builder that saw nothing has min=inf, max=-inf
        offset, counts = _dense(buckets)
        return cls(count, float(sum), float(min), float(max), zero_count, offset, counts)

    @classmethod
    def merge_all(cls, digests: Iterable[LatencyDigest]) -> LatencyDigest:
        """Exact merge of any number of digests in one pass; order does not matter (up to
        float rounding of ``sum``)."""
        present = [d for d in digests if d.count]
        if len(present) <= 1:
            return present[0] if present else _EMPTY
        offset, counts = _add_dense([(d.offset, d.counts) for d in present if d.counts])
        return cls(
            count=sum(d.count for d in present),
            sum=sum(d.sum for d in present),
            min=min(d.min for d in present),
            max=max(d.max for d in present),
            zero_count=sum(d.zero_count for d in present),
            offset=offset,
            counts=counts,
        )

    @property
    def buckets(self) -> dict[int, int]:
        """Non-empty buckets, sparse: index -> count (the zero bucket is ``zero_count``)."""
        return {self.offset + k: n for k, n in enumerate(self.counts) if n}

    @property
    def avg(self) -> float:
        """Mean in ms; 0 when empty."""
        return self.sum / self.count if self.count else 0.0

    def merge(self, other: LatencyDigest) -> LatencyDigest:
        """Exact merge: counts, sums and buckets add; min of mins, max of maxes."""
        return LatencyDigest.merge_all((self, other))

    def quantile(self, q: float) -> float:
        """Value at rank ceil(q * count) (at least 1), 0 <= q <= 1, within 1 % of the exact
        nearest-rank value; 0 when empty. The bucket representative, clamped to [min, max]."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q!r}")
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
        return self.max  # unreachable for a consistent digest

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """``quantile`` of each q."""
        return [self.quantile(q) for q in qs]

    def packed(self) -> PackedDigest:
        """The stored form (``rollup.packed``): counts packed as little-endian bytes."""
        width, data = pack_counts(self.counts)
        return PackedDigest(
            self.count, self.sum, self.min, self.max, self.zero_count, self.offset, width, data
        )

    @classmethod
    def from_packed(cls, stored: PackedDigest) -> LatencyDigest:
        """The digest of a stored form; ValueError when it is inconsistent."""
        counts = tuple(stored.array().tolist())
        return cls(stored.count, stored.sum, stored.min, stored.max, stored.zero_count,
                   stored.offset, counts)  # fmt: skip

    def to_bytes(self) -> bytes:
        """The stored form as msgpack; ``from_bytes`` restores an equal digest."""
        return encode(self.packed())

    @classmethod
    def from_bytes(cls, data: bytes) -> LatencyDigest:
        """Inverse of ``to_bytes``, and of the list-of-ints form stored before it; ValueError
        on malformed or inconsistent data."""
        return cls.from_packed(decode_any(data))

    def to_dict(self) -> dict[str, object]:
        """Raw parts for JSON: bucket indexes become string keys."""
        return {
            "count": self.count,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "zero_count": self.zero_count,
            "buckets": {str(k): n for k, n in self.buckets.items()},
        }


def _inconsistency(d: LatencyDigest) -> str:
    """Why ``d`` breaks the digest invariants (which make equality value equality), or ''.
    Cheap checks only: this runs for every digest decoded from a snapshot row."""
    if d.count != d.zero_count + sum(d.counts) or d.zero_count < 0:
        return f"count {d.count} != zero_count {d.zero_count} + bucket counts"
    if d.counts and not (d.counts[0] and d.counts[-1]):
        return "bucket counts must have no zeros at either end"
    if not d.counts and d.offset:
        return "offset without buckets"
    return summary_problem(d.count, d.sum, d.min, d.max)


def _dense(buckets: Mapping[int, int]) -> tuple[int, tuple[int, ...]]:
    """Sparse index -> count as a dense (offset, counts) array, zero counts dropped."""
    present = {index: n for index, n in buckets.items() if n}
    if not present:
        return 0, ()
    offset = min(present)
    dense = [0] * (max(present) - offset + 1)
    for index, n in present.items():
        dense[index - offset] = n
    return offset, tuple(dense)


def _add_dense(arrays: list[tuple[int, tuple[int, ...]]]) -> tuple[int, tuple[int, ...]]:
    """Element-wise sum of dense (offset, counts) arrays, as one (offset, counts)."""
    if not arrays:
        return 0, ()
    offset = min(start for start, _ in arrays)
    top = max(start + len(counts) for start, counts in arrays)
    dense = [0] * (top - offset)
    for start, counts in arrays:
        lo = start - offset
        dense[lo : lo + len(counts)] = map(add, dense[lo : lo + len(counts)], counts)
    return offset, tuple(dense)


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


_EMPTY = LatencyDigest()


def merge_all(digests: Iterable[LatencyDigest]) -> LatencyDigest:
    """Module-level alias of ``LatencyDigest.merge_all``."""
    return LatencyDigest.merge_all(digests)


class DigestBuilder:
    """Mutable accumulator for one digest. About 0.25 µs a value through ``extend`` and 0.4 µs
    through ``add`` (2-core machine): 1M values take well under the hourly job's 3 s."""

    __slots__ = ("_buckets", "_count", "_max", "_min", "_sum", "_zero")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf
        self._zero = 0

    def add(self, value_ms: float) -> None:
        """Count one latency (ms, finite, >= 0); ValueError otherwise. ``extend`` is faster
        for many values."""
        if not 0.0 < value_ms < math.inf:
            self._zero += _zero_or_raise(value_ms)
        else:
            index = digest_index(value_ms)
            self._buckets[index] = self._buckets.get(index, 0) + 1
        self._count += 1
        self._sum += value_ms
        self._min = value_ms if value_ms < self._min else self._min
        self._max = value_ms if value_ms > self._max else self._max

    def extend(self, values: Iterable[float]) -> None:
        """Count many latencies; the hot loop, kept inline and on locals for speed."""
        buckets, get, log, ceil = self._buckets, self._buckets.get, math.log, math.ceil
        inv, edge, high_edge, inf = INV_LN_GAMMA, EDGE, 1.0 - EDGE, math.inf
        floor, floor_index = MIN_MS, FLOOR_INDEX
        count, total, low, high = self._count, self._sum, self._min, self._max
        try:
            for value in values:
                if not 0.0 < value < inf:
                    self._zero += _zero_or_raise(value)
                elif value < floor:
                    buckets[floor_index] = get(floor_index, 0) + 1
                else:
                    x = log(value) * inv
                    index = ceil(x)
                    if not edge < index - x < high_edge:
                        index = bucket_index(value)
                    buckets[index] = get(index, 0) + 1
                count += 1
                total += value
                low = value if value < low else low
                high = value if value > high else high
        finally:
            self._count, self._sum, self._min, self._max = count, total, low, high

    def add_bucket(
        self, index: int | None, count: int, sum_ms: float, min_ms: float, max_ms: float
    ) -> None:
        """Count ``count`` durations already bucketed (in SQL, as ``digest_index`` does;
        ``index`` None is 0 ms) with their exact sum, min and max."""
        if index is None:
            self._zero += count
        else:
            self._buckets[index] = self._buckets.get(index, 0) + count
        self._count += count
        self._sum += sum_ms
        self._min = min(self._min, min_ms)
        self._max = max(self._max, max_ms)

    @property
    def size(self) -> int:
        """Occupied buckets (the memory the builder holds grows with it)."""
        return len(self._buckets)

    def build(self) -> LatencyDigest:
        """The digest of every value added so far (the builder stays usable)."""
        return LatencyDigest.from_buckets(
            count=self._count,
            sum=self._sum,
            min=self._min,
            max=self._max,
            zero_count=self._zero,
            buckets=self._buckets,
        )


def _zero_or_raise(value: float) -> int:
    if value == 0:
        return 1
    raise ValueError(f"latency must be a finite number of ms >= 0, got {value!r}")
