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


EMPTY = PackedDigest(0, 0.0, 0.0, 0.0, 0, 0, 1, b"")
MAX_SPAN = 1 << 17
"""More buckets than any finite duration spans (about 71,000 from the smallest subnormal to
the largest float): a merge refuses wider digests instead of allocating for them."""


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
    count, total, low, high, zero, offset, width, data = zip(*map(astuple, present), strict=True)
    lows, highs = np.array(low, np.float64), np.array(high, np.float64)
    valid = min(count) > 0 and min(zero) >= 0 and bool(np.all((lows >= 0) & (lows <= highs)))
    if not valid or not all(data) and any(_bare_problem(d) for d in present):
        _raise_first(present)
    merged_offset, merged_width, merged = 0, 1, b""
    if any(data):
        banded = [d for d in present if d.counts] if not all(data) else present
        merged_offset, counts = _add_counts(banded)
        merged_width, merged = _narrowest(counts)
    if sum(count) >= 1 << 64:
        raise ValueError("inconsistent latency digest: merged count past 2**64")
    return PackedDigest(sum(count), sum(total), min(low), max(high), sum(zero), merged_offset,
                        merged_width, merged)  # fmt: skip


def _bare_problem(d: PackedDigest) -> bool:
    """A digest without buckets whose count or offset says otherwise."""
    return not d.counts and bool(d.offset or d.count != d.zero_count)


def _add_counts(ds: list[PackedDigest]) -> tuple[int, Counts]:
    """(offset, summed counts as uint64) of digests with buckets, each checked for width,
    trimmed ends and its own count."""
    _, _, _, _, zero, offset, width, data = zip(*map(astuple, ds), strict=True)
    widths = set(width)
    if not widths <= WIDTHS.keys():
        _raise_first(ds)
    sizes = np.fromiter(map(len, data), np.int64, len(data))
    lengths, rest = np.divmod(sizes, np.array(width, np.int64))
    starts = np.array(offset, np.int64)
    low = int(starts.min())
    span = int((starts + lengths).max()) - low
    if rest.any() or span > MAX_SPAN:
        _raise_first(ds)
    total = np.zeros(span, np.uint64)
    for w in sorted(widths):
        rows = list(range(len(ds))) if len(widths) == 1 else [i for i in range(len(ds)) if width[i] == w]
        matrix = _matrix([data[i] for i in rows], (starts[rows] - low).tolist(), span, w)
        first = starts[rows] - low
        index = np.arange(len(rows))
        ends = matrix[index, first].all() and matrix[index, first + lengths[rows] - 1].all()
        sums = [_total(row) for row in matrix] if w == 8 else matrix.sum(axis=1).tolist()
        if not ends or sums != [ds[i].count - zero[i] for i in rows]:
            _raise_first([ds[i] for i in rows])
        total += matrix.sum(axis=0, dtype=np.uint64)
    return low, total


def _matrix(data: list[bytes], befores: list[int], span: int, width: int) -> Counts:
    """One row per digest, its counts placed ``before`` buckets in: zero padding joined."""
    pieces: list[bytes] = []
    size = span * width
    for counts, before in zip(data, befores, strict=True):
        pieces += (bytes(before * width), counts, bytes(size - before * width - len(counts)))
    return np.frombuffer(b"".join(pieces), WIDTHS[width]).reshape(len(data), span)


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
