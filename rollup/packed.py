"""The stored form of a latency digest: its parts with the dense bucket counts packed as one
little-endian uint8/16/32/64 byte string (the narrowest that holds the largest count), read
without one Python object per bucket: validation and quantiles (numpy). ``rollup.merger``
merges many at once; ``rollup.digest`` converts to and from it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from rollup.buckets import bucket_index, bucket_value

WIDTHS: dict[int, np.dtype[Any]] = {
    1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8"),
}  # fmt: skip
Counts = npt.NDArray[Any]


class PackedDigest(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """Digest parts as stored: ``counts`` holds bucket ``offset + k`` at ``k * width`` bytes,
    trimmed of zeros at both ends. Decoding does not check the invariants: ``problem`` does,
    and every reader calls it (``check``) or its batch form (``rollup.merger``). Not
    tracked by the cycle collector (``gc=False``: it holds no containers), so decoding
    thousands of rows does not trigger collections."""

    count: int
    sum: float
    min: float
    max: float
    zero_count: int
    offset: int
    width: int
    counts: bytes

    def array(self) -> Counts:
        """The bucket counts as a read-only numpy view; ValueError on a bad width or length."""
        dtype = WIDTHS.get(self.width)
        if dtype is None or len(self.counts) % self.width:
            raise ValueError(
                f"inconsistent latency digest: {len(self.counts)} count bytes at width {self.width}"
            )
        return np.frombuffer(self.counts, dtype)

    @property
    def avg(self) -> float:
        """Mean in ms; 0 when empty."""
        return self.sum / self.count if self.count else 0.0

    def quantile(self, q: float) -> float:
        """As ``LatencyDigest.quantile``: the same value for the same digest."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """``quantile`` of each q, with one pass over the counts."""
        wanted = list(qs)
        bad = [q for q in wanted if not 0.0 <= q <= 1.0]
        if bad:
            raise ValueError(f"quantile must be in [0, 1], got {bad[0]!r}")
        if not self.count:
            return [0.0] * len(wanted)
        ranks = [max(1, math.ceil(q * self.count)) - self.zero_count for q in wanted]
        seen = np.cumsum(self.array(), dtype=np.uint64)
        found = np.searchsorted(seen, [max(r, 0) for r in ranks], side="left").tolist()
        return [self._value(rank, k, len(seen)) for rank, k in zip(ranks, found, strict=True)]

    def _value(self, rank: int, k: int, size: int) -> float:
        if rank <= 0:
            return 0.0
        if k >= size:
            return self.max  # unreachable for a consistent digest
        value = bucket_value(self.offset + k)
        return self.min if value < self.min else self.max if value > self.max else value


EMPTY = PackedDigest(0, 0.0, 0.0, 0.0, 0, 0, 1, b"")
LOWEST = bucket_index(5e-324)
HIGHEST = bucket_index(1.7976931348623157e308)
"""The buckets of finite durations, from the smallest subnormal (rows stored before the
1 µs floor) to the largest float: a digest with buckets outside is refused when read."""
MAX_SPAN = 1 << 17
"""More buckets than any finite duration spans (about 71,000 from the smallest subnormal to
the largest float): a merge refuses wider digests instead of allocating for them."""


def pack_counts(counts: Sequence[int]) -> tuple[int, bytes]:
    """(width, bytes) of dense counts (each 0 <= n < 2**64), the narrowest width."""
    if not counts:
        return 1, b""
    top = max(counts)
    width = narrowest(top)
    if min(counts) < 0 or top >= 1 << 64:
        raise ValueError("inconsistent latency digest: bucket counts must be in [0, 2**64)")
    return width, np.array(counts, dtype=WIDTHS[width]).tobytes()


def problem(d: PackedDigest) -> str:
    """Why ``d`` breaks the digest invariants (as ``rollup.digest``'s), or ''."""
    try:
        counts = d.array()
    except ValueError as exc:
        return str(exc).removeprefix("inconsistent latency digest: ")
    if d.zero_count < 0 or d.count != d.zero_count + total(counts):
        return f"count {d.count} != zero_count {d.zero_count} + bucket counts"
    if len(counts) and not (counts[0] and counts[-1]):
        return "bucket counts must have no zeros at either end"
    return _scalar_problem(d, len(counts))


def _scalar_problem(d: PackedDigest, size: int) -> str:
    if not size and d.offset:
        return "offset without buckets"
    if size and not LOWEST <= d.offset <= d.offset + size - 1 <= HIGHEST:
        return f"bucket indexes must be in [{LOWEST}, {HIGHEST}], got offset {d.offset}"
    return summary_problem(d.count, d.sum, d.min, d.max)


def summary_problem(count: int, total: float, low: float, high: float) -> str:
    """What is wrong with a digest's count, sum, min and max together, or '' (the checks
    every reader of a digest makes, packed or not)."""
    if not count and (total, low, high) != (0, 0, 0):
        return "an empty digest has sum, min and max 0"
    if count and not 0 <= low <= high:
        return f"need 0 <= min <= max, got min {low!r} max {high!r}"
    if count and not total >= 0:
        return f"need sum >= 0, got {total!r}"
    return ""


def check(d: PackedDigest) -> PackedDigest:
    """``d`` itself; ValueError saying what is wrong when it breaks the invariants."""
    found = problem(d)
    if found:
        raise ValueError(f"inconsistent latency digest: {found}")
    return d


def total(counts: Counts) -> int:
    """The exact sum of counts: uint64 addition could wrap only for 8-byte counts."""
    if counts.dtype.itemsize == 8:
        return sum(counts.tolist())
    return int(counts.sum(dtype=np.uint64))


def narrowest(top: int) -> int:
    """The width of counts whose largest is ``top``."""
    return 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8


LEGACY_MARK = b"\x97"
"""First byte of a digest stored before this form: a msgpack array of 7 with the counts as
a list of ints (the packed form is an array of 8, ``\\x98``)."""
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(PackedDigest).decode
_decode_list = msgspec.msgpack.Decoder(list[PackedDigest]).decode
_decode_raws = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode
_decode_legacy = msgspec.msgpack.Decoder(
    tuple[int, float, float, float, int, int, list[int]]
).decode


def encode(d: PackedDigest) -> bytes:
    return _encode(d)


def decode(data: bytes) -> PackedDigest:
    """One stored digest, checked; ValueError when malformed or inconsistent."""
    try:
        return check(_decode(data))
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed latency digest: {exc}") from exc


def decode_run(count: int, data: bytes) -> list[PackedDigest]:
    """``count`` stored digests concatenated (as ``Snapshots.end_to_end_digests`` reads
    them) in one decoder call, unchecked (the merge checks them); rows stored before the
    packed form converted one by one. ValueError when one is malformed."""
    head = b"\xdd" + count.to_bytes(4, "big")
    try:
        return _decode_list(head + data)
    except msgspec.DecodeError:
        pass
    try:
        raws = _decode_raws(head + data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed latency digests: {exc}") from exc
    return [decode_any(bytes(raw)) for raw in raws]


def decode_any(data: bytes) -> PackedDigest:
    """One stored digest in either form, checked; ValueError when malformed or
    inconsistent."""
    if data[:1] != LEGACY_MARK:
        return decode(data)
    try:
        count, total, low, high, zero, offset, counts = _decode_legacy(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed latency digest: {exc}") from exc
    width, packed = pack_counts(counts)
    return check(PackedDigest(count, total, low, high, zero, offset, width, packed))
