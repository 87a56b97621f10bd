"""The stored form of a latency digest: its parts with the dense bucket counts packed as one
little-endian uint8/16/32/64 byte string (the narrowest that holds the largest count), and
the batch operations that read it without one Python object per bucket: validation, merging
many digests at once and quantiles (numpy). ``rollup.digest`` converts to and from it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import msgspec
from msgspec.structs import astuple
import numpy as np
import numpy.typing as npt

from rollup.buckets import bucket_value

WIDTHS = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}
Counts = npt.NDArray[np.unsignedinteger]


class PackedDigest(msgspec.Struct, array_like=True, frozen=True):
    """Digest parts as stored: ``counts`` holds bucket ``offset + k`` at ``k * width`` bytes,
    trimmed of zeros at both ends. Decoding does not check the invariants: ``problem`` does,
    and every reader (``check``, ``merge_groups``) calls it or its batch form."""

    count: int = 0
    sum: float = 0.0
    min: float = 0.0
    max: float = 0.0
    zero_count: int = 0
    offset: int = 0
    width: int = 1
    counts: bytes = b""

    def array(self) -> Counts:
        """The bucket counts as a read-only numpy view; ValueError on a bad width or length."""
        dtype = WIDTHS.get(self.width)
        if dtype is None or len(self.counts) % self.width:
            raise ValueError(
                f"inconsistent latency digest: {len(self.counts)} count bytes"
                f" at width {self.width}"
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


EMPTY = PackedDigest()


def pack_counts(counts: Sequence[int]) -> tuple[int, bytes]:
    """(width, bytes) of dense counts (each 0 <= n < 2**64), the narrowest width."""
    if not counts:
        return 1, b""
    top = max(counts)
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    if min(counts) < 0 or top >= 1 << 64:
        raise ValueError("inconsistent latency digest: bucket counts must be in [0, 2**64)")
    return width, np.array(counts, dtype=WIDTHS[width]).tobytes()


def problem(d: PackedDigest) -> str:
    """Why ``d`` breaks the digest invariants (as ``rollup.digest``'s), or ''."""
    try:
        counts = d.array()
    except ValueError as exc:
        return str(exc).removeprefix("inconsistent latency digest: ")
    if d.zero_count < 0 or d.count != d.zero_count + _total(counts):
        return f"count {d.count} != zero_count {d.zero_count} + bucket counts"
    if len(counts) and not (counts[0] and counts[-1]):
        return "bucket counts must have no zeros at either end"
    return _scalar_problem(d, bool(len(counts)))


def _scalar_problem(d: PackedDigest, has_buckets: bool) -> str:
    if not has_buckets and d.offset:
        return "offset without buckets"
    if not d.count and (d.sum, d.min, d.max) != (0, 0, 0):
        return "an empty digest has sum, min and max 0"
    if d.count and not 0 <= d.min <= d.max:
        return f"need 0 <= min <= max, got min {d.min!r} max {d.max!r}"
    return ""


def check(d: PackedDigest) -> PackedDigest:
    """``d`` itself; ValueError saying what is wrong when it breaks the invariants."""
    found = problem(d)
    if found:
        raise ValueError(f"inconsistent latency digest: {found}")
    return d


def merge_groups(groups: Sequence[Sequence[PackedDigest]]) -> list[PackedDigest]:
    """The exact merge of each group (as ``LatencyDigest.merge_all``), every digest checked;
    ValueError naming the first inconsistent one. Numpy adds the counts of a group as rows of
    one matrix, so the Python work is per digest, not per bucket."""
    return [_merge(group) for group in groups]


def _merge(group: Sequence[PackedDigest]) -> PackedDigest:
    present = [d for d in group if d != EMPTY]
    if len(present) <= 1:
        return check(present[0]) if present else EMPTY
    count, total, low, high, zero, _, _, data = zip(*map(astuple, present), strict=True)
    lows, highs = np.array(low, np.float64), np.array(high, np.float64)
    valid = min(count) > 0 and min(zero) >= 0 and bool(np.all((lows >= 0) & (lows <= highs)))
    banded = [d for d, counts in zip(present, data, strict=True) if counts]
    if not valid or any(not d.counts and (d.offset or d.count != d.zero_count) for d in present):
        _raise_first(present)
    offset, width, packed = 0, 1, b""
    if banded:
        offset, counts = _add_counts(banded)
        width, packed = _narrowest(counts)
    if sum(count) >= 1 << 64:
        raise ValueError("inconsistent latency digest: merged count past 2**64")
    return PackedDigest(sum(count), sum(total), min(low), max(high), sum(zero), offset, width,
                        packed)  # fmt: skip


def _add_counts(ds: list[PackedDigest]) -> tuple[int, Counts]:
    """(offset, summed counts as uint64) of digests with buckets, each checked for width,
    trimmed ends and its own count."""
    widths = {d.width for d in ds}
    if not widths <= WIDTHS.keys() or any(len(d.counts) % d.width for d in ds):
        _raise_first(ds)
    lengths = [len(d.counts) // d.width for d in ds]
    low = min(d.offset for d in ds)
    span = max(d.offset + n for d, n in zip(ds, lengths, strict=True)) - low
    total = np.zeros(span, np.uint64)
    for width in sorted(widths):
        rows = [(d, n) for d, n in zip(ds, lengths, strict=True) if d.width == width]
        matrix = _matrix(rows, low, span, width)
        index = np.arange(len(rows))
        ends = matrix[index, [d.offset - low for d, _ in rows]].all() and matrix[
            index, [d.offset - low + n - 1 for d, n in rows]
        ].all()
        sums = [_total(row) for row in matrix] if width == 8 else matrix.sum(axis=1).tolist()
        if not ends or sums != [d.count - d.zero_count for d, _ in rows]:
            _raise_first([d for d, _ in rows])
        total += matrix.sum(axis=0, dtype=np.uint64)
    return low, total


def _matrix(rows: list[tuple[PackedDigest, int]], low: int, span: int, width: int) -> Counts:
    """One row per digest, its counts placed at its offset: zero padding joined as bytes."""
    pieces: list[bytes] = []
    for d, n in rows:
        before = (d.offset - low) * width
        pieces += (bytes(before), d.counts, bytes(span * width - before - n * width))
    return np.frombuffer(b"".join(pieces), WIDTHS[width]).reshape(len(rows), span)


def _total(counts: Counts) -> int:
    """The exact sum: uint64 addition could wrap only for 8-byte counts."""
    if counts.dtype.itemsize == 8:
        return sum(counts.tolist())
    return int(counts.sum(dtype=np.uint64))


def _narrowest(counts: Counts) -> tuple[int, bytes]:
    top = int(counts.max()) if len(counts) else 0
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    return width, counts.astype(WIDTHS[width]).tobytes()


def _raise_first(ds: Iterable[PackedDigest]) -> None:
    for d in ds:
        check(d)
    raise ValueError("inconsistent latency digest: bucket counts do not add up")


LEGACY_MARK = b"\x97"
"""First byte of a digest stored before this form: a msgpack array of 7 with the counts as
a list of ints (the packed form is an array of 8, ``\\x98``)."""
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(PackedDigest).decode
_decode_list = msgspec.msgpack.Decoder(list[PackedDigest]).decode


def encode(d: PackedDigest) -> bytes:
    return _encode(d)


def decode(data: bytes) -> PackedDigest:
    """One stored digest, checked; ValueError when malformed or inconsistent."""
    try:
        return check(_decode(data))
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed latency digest: {exc}") from exc


def decode_many(blobs: Sequence[bytes]) -> list[PackedDigest]:
    """Many stored digests of the packed form in one decoder call, unchecked (the merge
    checks them); ValueError when one is malformed."""
    head = b"\xdd" + len(blobs).to_bytes(4, "big")
    try:
        return _decode_list(head + b"".join(blobs))
    except msgspec.DecodeError as exc:
        raise ValueError(f"malformed latency digest: {exc}") from exc
