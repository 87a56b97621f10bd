"""How accurate each live latency figure is: Prometheus' ``histogram_quantile`` over the
exposed histogram buckets (the old layout and the log-spaced ones), and voxmon's own 1 %
digest, against the exact quantile of synthetic durations shaped like the pipeline's.
Prints one table per layout, the series each layout costs, and the memory the 60-minute
window digests take at a given event rate.

Run: ``.venv/bin/python benchmarks/latency_accuracy.py [--samples 20000] [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rollup.digest import DigestBuilder  # noqa: E402

OLD = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
QUANTILES = (0.5, 0.95, 0.99)


def geometric(start: float, end: float, factor: float) -> tuple[float, ...]:
    """Bounds ``start * factor**k`` up to the first one at or past ``end`` (seconds)."""
    count = math.ceil(math.log(end / start) / math.log(factor))
    return tuple(float(f"{start * factor**k:.4g}") for k in range(count + 1))


def lognormal(median_s: float, sigma: float) -> Callable[[random.Random], float]:
    return lambda rng: rng.lognormvariate(math.log(median_s), sigma)


def bimodal(rng: random.Random) -> float:
    """Most notes fast, a fifth waiting on a retry or a slow model."""
    if rng.random() < 0.8:
        return rng.lognormvariate(math.log(2.0), 0.3)
    return rng.lognormvariate(math.log(30.0), 0.4)


DISTRIBUTIONS: tuple[tuple[str, str, Callable[[random.Random], float]], ...] = (
    ("transcription, lognormal median 8 s, sigma 0.6", "stage", lognormal(8, 0.6)),
    ("claims extraction, median 20 s, sigma 0.8", "stage", lognormal(20, 0.8)),
    ("entity resolution, median 0.8 s, sigma 1.0", "stage", lognormal(0.8, 1.0)),
    ("draft generation, bimodal 2 s / 30 s", "stage", bimodal),
    ("end to end, median 400 s, sigma 0.5", "e2e", lognormal(400, 0.5)),
    ("end to end, median 2 h, sigma 1.2 (human confirmation)", "e2e", lognormal(7200, 1.2)),
)


def exact(values: Sequence[float], q: float) -> float:
    """The value at rank ceil(q * n), as the digest defines a quantile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def prometheus_quantile(bounds: Sequence[float], values: Sequence[float], q: float) -> float:
    """``histogram_quantile`` as Prometheus computes it over classic buckets: linear
    interpolation inside the bucket holding rank q * count (the first bucket starts at 0;
    a rank in +Inf answers the highest finite bound)."""
    counts = [0] * (len(bounds) + 1)
    for value in values:
        counts[_bucket(bounds, value)] += 1
    rank, cumulative = q * len(values), 0
    for index, count in enumerate(counts):
        if cumulative + count >= rank and count:
            if index == len(bounds):
                return bounds[-1]
            low = bounds[index - 1] if index else 0.0
            return low + (bounds[index] - low) * (rank - cumulative) / count
        cumulative += count
    return bounds[-1]


def _bucket(bounds: Sequence[float], value: float) -> int:
    low, high = 0, len(bounds)
    while low < high:  # first bound >= value
        mid = (low + high) // 2
        if bounds[mid] >= value:
            high = mid
        else:
            low = mid + 1
    return low


def digest_quantile(values: Sequence[float], q: float) -> float:
    builder = DigestBuilder()
    for value in values:
        builder.add(value * 1000)
    return builder.build().quantile(q) / 1000


def error(estimate: float, truth: float) -> float:
    return (estimate - truth) / truth * 100


def table(layouts: dict[str, dict[str, tuple[float, ...]]], samples: int) -> None:
    for name, _family, draw in DISTRIBUTIONS:
        rng = random.Random(name)
        values = [draw(rng) for _ in range(samples)]
        print(f"\n{name} ({samples:,} samples)")
        heads = "".join(f" {label:>18}" for label in layouts)
        print(f"{'q':>5} {'exact s':>10}{heads} {'digest':>12}")
        for q in QUANTILES:
            truth = exact(values, q)
            cells = "".join(
                f" {error(prometheus_quantile(layout[_family], values, q), truth):>+17.1f}%"
                for layout in layouts.values()
            )
            print(f"p{int(q * 100):<4} {truth:>10.2f}{cells}"
                  f" {error(digest_quantile(values, q), truth):>+11.1f}%")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="2,000 samples (smoke run)")
    args = parser.parse_args()
    layouts = {
        "old layout": {"stage": OLD, "e2e": OLD},
        **{
            f"log x{factor}": {
                "stage": geometric(0.05, 4 * 3600, factor),
                "e2e": geometric(1.0, 30 * 86400, factor),
            }
            for factor in (1.25, 1.15, 1.1)
        },
    }
    table(layouts, 2_000 if args.quick else args.samples)
    print("\nseries per layout (4 timed stages x (buckets + +Inf + _sum + _count) + end to end):")
    for label, layout in layouts.items():
        series = 4 * (len(layout["stage"]) + 3) + len(layout["e2e"]) + 3
        print(
            f"  {label:<12} {len(layout['stage'])} + {len(layout['e2e'])} bounds, {series} series"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
