"""Exact merges of many groups of packed digests in one batch (the daily job's scopes, the
org breakdown's orgs): numpy adds every digest's counts as a row of a few large matrices,
so the Python work is a few operations per digest, none per bucket, and the invariants of
every digest are checked on the way (``rollup.packed.problem`` names the first bad one)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import pairwise
from operator import sub
from typing import Any

import numpy as np
import numpy.typing as npt

from rollup import packed
from rollup.buckets import bucket_value
from rollup.packed import EMPTY, MAX_SPAN, WIDTHS, Counts, PackedDigest, check, narrowest, total

CHUNK_CELLS = 1 << 22
"""Matrix cells added at once: bounds the scratch memory (4 MB of uint8 counts)."""
MAX_CELLS = 1 << 22
"""Cells of the summed rows of one batch (32 MB of uint64): a batch whose groups times the
span of all their buckets is larger is split in halves, so one digest spanning tens of
thousands of buckets (a row stored before the 1 µs floor) does not widen every group's row.
A batch of ``GROUPS_PER_BATCH`` groups of digests up to 30 days (1,430 buckets) fits in one."""


GROUPS_PER_BATCH = 64
"""Groups merged in one set of matrices: the 1,000 orgs of a 90-day breakdown (90,000
digests) merged in 107 ms as one batch and in 83 ms in batches of 64, whose summed rows
stay in the processor's cache; smaller batches were no faster."""


class _TooWide(Exception):
    """The batch would exceed ``MAX_CELLS``: the caller splits it."""


def merge_groups(groups: Sequence[Sequence[PackedDigest]]) -> list[PackedDigest]:
    """The exact merge of each group (as ``LatencyDigest.merge_all``: counts, zero counts
    and sums add in order, min of mins, max of maxes); ValueError naming the first
    inconsistent digest of any group. Batches of ``GROUPS_PER_BATCH`` groups."""
    return [
        merged
        for at in range(0, len(groups), GROUPS_PER_BATCH)
        for merged in _merge_batch(groups[at : at + GROUPS_PER_BATCH])
    ]


def _merge_batch(groups: Sequence[Sequence[PackedDigest]]) -> list[PackedDigest]:
    flat: list[PackedDigest] = []
    bounds = [0]
    for group in groups:
        flat += [d for d in group if d.count or not _checked_empty(d)]
        bounds.append(len(flat))
    if not flat:
        return [EMPTY] * len(groups)
    count, sums, lows, highs, zero, offset, width, data = _columns(flat)
    _check_scalars(flat, count, sums, lows, highs, zero, offset, data)
    try:
        band = _Bands(flat, offset, width, data, bounds, list(map(sub, count, zero)))
    except _TooWide:
        half = len(groups) // 2
        return _merge_batch(groups[:half]) + _merge_batch(groups[half:])
    out = []
    for (a, b), (first, width_g, counts) in zip(pairwise(bounds), band.results(), strict=True):
        if a == b:
            out.append(EMPTY)
            continue
        n = sum(count[a:b])
        if n >= 1 << 64:
            raise ValueError("inconsistent latency digest: merged count past 2**64")
        out.append(PackedDigest(n, sum(sums[a:b]), min(lows[a:b]), max(highs[a:b]),
                                sum(zero[a:b]), first, width_g, counts))  # fmt: skip
    return out


def quantiles_of(digests: Sequence[PackedDigest], qs: Sequence[float]) -> list[list[float]]:
    """``d.quantiles(qs)`` of each digest, every one checked as by ``merge_groups``, in one
    batch: a cumulative sum over the matrix of all their counts."""
    flat = [d for d in digests if d.count or not _checked_empty(d)]
    if not flat:
        return [[0.0] * len(qs) for _ in digests]
    count, sums, lows, highs, zero, offset, width, data = _columns(flat)
    _check_scalars(flat, count, sums, lows, highs, zero, offset, data)
    tops = list(map(sub, count, zero))  # each digest's count in buckets
    try:
        band = _Bands(flat, offset, width, data, list(range(len(flat) + 1)), tops)
    except _TooWide:
        half = len(digests) // 2
        return quantiles_of(digests[:half], qs) + quantiles_of(digests[half:], qs)
    seen = np.cumsum(band.sums, axis=1)
    columns = []
    for q in qs:
        ranks = [max(1, math.ceil(q * n)) - z for n, z in zip(count, zero, strict=True)]
        # a rank past the buckets (q * count rounded up past count) is the max, as in
        # ``LatencyDigest.quantile``; clipped, it fits the uint64 cumulative counts
        cut = np.array([min(max(r, 0), top) for r, top in zip(ranks, tops, strict=True)], np.uint64)
        found = (seen < cut[:, None]).sum(axis=1)
        columns.append([
            0.0 if r <= 0 else high if r > top else _clamp(bucket_value(band.low + k), low, high)
            for r, top, k, low, high in zip(ranks, tops, found.tolist(), lows, highs, strict=True)
        ])  # fmt: skip
    rows = iter(zip(*columns, strict=True))
    return [list(next(rows)) if d.count else [0.0] * len(qs) for d in digests]


def _checked_empty(d: PackedDigest) -> bool:
    """True for a digest of no values (it merges as nothing, whatever width it claims),
    after checking it unless it is ``EMPTY`` itself."""
    if d != EMPTY:
        check(d)
    return True


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


def _columns(flat: list[PackedDigest]) -> list[list[Any]]:
    """The fields of the digests, one list per field. A pass per field allocates one list
    each; a tuple per digest (``astuple``) is a tracked object each, and those thousands
    trigger the cycle collector (measured with it on: 0.6 against 1.5 ms for 5,760)."""
    return [
        [d.count for d in flat], [d.sum for d in flat], [d.min for d in flat],
        [d.max for d in flat], [d.zero_count for d in flat], [d.offset for d in flat],
        [d.width for d in flat], [d.counts for d in flat],
    ]  # fmt: skip


def _check_scalars(
    flat: list[PackedDigest], count: Sequence[int], sums: Sequence[float],
    lows: Sequence[float], highs: Sequence[float], zero: Sequence[int], offset: Sequence[int],
    data: Sequence[bytes],
) -> None:  # fmt: skip
    """Count > 0, zero count >= 0, 0 <= min <= max and sum >= 0 (NaN fails), offsets of
    finite durations (they fit int64) and, for a digest without buckets, offset 0 and
    count = zero count."""
    low, high = np.array(lows, np.float64), np.array(highs, np.float64)
    valid = min(offset) >= packed.LOWEST and max(offset) <= packed.HIGHEST and min(count) > 0
    valid = valid and min(zero) >= 0 and bool(np.all((low >= 0) & (low <= high)))
    valid = valid and bool(np.all(np.array(sums, np.float64) >= 0))
    if not valid or (not all(data) and any(not d.counts and (d.offset or d.count != d.zero_count)
                                          for d in flat)):  # fmt: skip
        _raise_first(flat)


class _Bands:
    """The summed bucket counts of every group, one uint64 row per group over the span of
    all the digests' buckets (``low`` is the row's first bucket)."""

    def __init__(
        self, flat: list[PackedDigest], offset: Sequence[int], width: Sequence[int],
        data: Sequence[bytes], bounds: list[int], own: list[int],
    ) -> None:  # fmt: skip
        self._flat = flat
        self._own = own  # each digest's count in buckets (count - zero count)
        if not set(width) <= WIDTHS.keys():
            _raise_first(flat)
        widths = np.array(width, np.int64)
        lengths, rest = np.divmod(np.fromiter(map(len, data), np.int64, len(data)), widths)
        starts = np.array(offset, np.int64)
        banded = lengths > 0
        self.low = int(starts[banded].min()) if banded.any() else 0
        self.span = int((starts + lengths)[banded].max()) - self.low if banded.any() else 0
        if rest.any() or self.span > MAX_SPAN or self.low + self.span - 1 > packed.HIGHEST:
            _raise_first(flat)
        if len(bounds) > 2 and (len(bounds) - 1) * self.span > MAX_CELLS:
            raise _TooWide
        gids = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
        self.sums = np.zeros((len(bounds) - 1, self.span), np.uint64)
        for w in sorted(set(width)):
            rows = np.flatnonzero(banded & (widths == w))
            step = max(1, CHUNK_CELLS // max(1, self.span))
            for at in range(0, len(rows), step):
                chunk = rows[at : at + step]
                self._add(chunk, gids[chunk], starts[chunk] - self.low, lengths[chunk], data, w)

    def _add(
        self, rows: npt.NDArray[Any], gids: npt.NDArray[Any], firsts: npt.NDArray[Any],
        lengths: npt.NDArray[Any],
        data: Sequence[bytes], width: int,
    ) -> None:  # fmt: skip
        picked = rows.tolist()
        matrix = _matrix([data[i] for i in picked], firsts, lengths, self.span, width)
        index = np.arange(len(rows))
        ends = matrix[index, firsts].all() and matrix[index, firsts + lengths - 1].all()
        if not ends or _row_totals(matrix, width) != [self._own[i] for i in picked]:
            _raise_first(self._flat[i] for i in picked)
        starts = np.flatnonzero(np.r_[True, gids[1:] != gids[:-1]])
        sizes = np.diff(np.r_[starts, len(rows)])
        owner = gids[starts]
        if sizes.min() == sizes.max():  # as many rows for each group: one sum for all
            k = int(sizes[0])
            blocks = matrix.reshape(-1, k, self.span)
            self.sums[owner] += blocks.sum(axis=1, dtype=_accumulator(k, width))
            return
        # one sum per group's rows: faster than np.add.reduceat with a wider dtype
        for g, a, n in zip(owner.tolist(), starts.tolist(), sizes.tolist(), strict=True):
            self.sums[g] += matrix[a : a + n].sum(axis=0, dtype=_accumulator(n, width))

    def results(self) -> list[tuple[int, int, bytes]]:
        """(offset, width, counts) of each group's merged buckets, trimmed of zeros (the
        first and last occupied bucket and the largest count of every row found at once)."""
        if not self.span:
            return [(0, 1, b"")] * len(self.sums)
        occupied = self.sums != 0
        firsts = occupied.argmax(axis=1).tolist()
        ends = (self.span - occupied[:, ::-1].argmax(axis=1)).tolist()
        tops = self.sums.max(axis=1).tolist()
        return [
            (self.low + first, narrowest(top),
             self.sums[g, first:end].astype(WIDTHS[narrowest(top)]).tobytes())
            if top else (0, 1, b"")
            for g, (first, end, top) in enumerate(zip(firsts, ends, tops, strict=True))
        ]  # fmt: skip


def _accumulator(terms: int, width: int) -> type[np.unsignedinteger[Any]]:
    """The narrowest unsigned type that holds the sum of ``terms`` counts of ``width``
    bytes without wrapping (64 bits at most: a merged count past 2**64 is refused anyway).
    Adding 8-bit counts into 16 bits casts a quarter of the bytes 64-bit sums do: a day's
    group sums, 10 -> 3 ms."""
    top = terms * ((1 << (8 * width)) - 1)
    return np.uint16 if top < 1 << 16 else np.uint32 if top < 1 << 32 else np.uint64


def _row_totals(matrix: Counts, width: int) -> list[int]:
    """The exact sum of each row, in the narrowest type that cannot wrap (Python's for
    8-byte counts)."""
    if width == 8:
        return [total(row) for row in matrix]
    totals: list[int] = matrix.sum(axis=1, dtype=_accumulator(matrix.shape[1], width)).tolist()
    return totals


def _matrix(data: list[bytes], firsts: Counts, lengths: Counts, span: int, width: int) -> Counts:
    """One row per digest, its counts placed ``firsts`` buckets in: the counts joined with
    the zeros between them (after one row's counts and before the next's) as one gap each,
    every gap of a length cut once, so the Python work per digest is two list slots (a
    day's matrices, 10 -> 3 ms)."""
    ends = firsts + lengths
    gaps = np.empty(len(data) + 1, np.int64)
    gaps[0], gaps[-1] = firsts[0], span - ends[-1]
    gaps[1:-1] = span - ends[:-1] + firsts[1:]
    sizes = (gaps * width).tolist()
    zeros = bytes(2 * span * width)
    cut = {size: zeros[:size] for size in set(sizes)}
    pieces: list[bytes] = [b""] * (2 * len(data) + 1)
    pieces[0::2] = map(cut.__getitem__, sizes)
    pieces[1::2] = data
    return np.frombuffer(b"".join(pieces), WIDTHS[width]).reshape(len(data), span)


def _raise_first(ds: Iterable[PackedDigest]) -> None:
    for d in ds:
        check(d)
    raise ValueError("inconsistent latency digest: bucket counts do not add up")
