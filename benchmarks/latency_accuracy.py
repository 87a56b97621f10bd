"""How accurate each live latency figure is: Prometheus' ``histogram_quantile`` over the
exposed histogram buckets (the old layout and the log-spaced ones), and voxmon's own 1 %
digest, against the exact quantile of synthetic durations shaped like the pipeline's.
Prints one table per layout, the series each layout costs, and the memory the 60-minute
window digests take at a given event rate.

The shipped layout is ``exporter.live.families`` (log-spaced x1.15); x1.25 and x1.1 are
shown for comparison. Run: ``.venv/bin/python benchmarks/latency_accuracy.py [--samples
20000] [--rate 1000] [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.live.families import (  # noqa: E402
    END_TO_END_BUCKETS_S,
    OLD_DURATION_BUCKETS_S,
    STAGE_BUCKETS_S,
    log_bounds,
)
from exporter.live.tally import END_TO_END_SERIES  # noqa: E402
from rollup.digest import DigestBuilder  # noqa: E402
from rollup.live_latency import LatencyWindows  # noqa: E402

OLD = OLD_DURATION_BUCKETS_S
QUANTILES = (0.5, 0.95, 0.99)


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
    parser.add_argument("--rate", type=int, default=1_000, help="events/s for the memory run")
    parser.add_argument("--quick", action="store_true", help="2,000 samples, 20 events/s")
    args = parser.parse_args()
    layouts = {
        "old layout": {"stage": OLD, "e2e": OLD},
        "log x1.25": {"stage": log_bounds(0.05, 4 * 3600, 1.25),
                      "e2e": log_bounds(1.0, 30 * 86400, 1.25)},
        "shipped x1.15": {"stage": STAGE_BUCKETS_S, "e2e": END_TO_END_BUCKETS_S},
        "log x1.1": {"stage": log_bounds(0.05, 4 * 3600, 1.1),
                     "e2e": log_bounds(1.0, 30 * 86400, 1.1)},
    }  # fmt: skip
    table(layouts, 2_000 if args.quick else args.samples)
    print("\nseries per layout (4 timed stages x (buckets + +Inf + _sum + _count) + end to end):")
    for label, layout in layouts.items():
        series = 4 * (len(layout["stage"]) + 3) + len(layout["e2e"]) + 3
        print(
            f"  {label:<14} {len(layout['stage'])} + {len(layout['e2e'])} bounds, {series} series"
        )
    window_memory(20 if args.quick else args.rate)
    return 0


def window_memory(rate: int) -> None:
    """The 60-minute window digests after an hour at ``rate`` timed events/s (every event
    a duration: an upper bound), spread over the four stages and end to end."""
    series = [(name, draw) for name, (_, draw) in SERIES.items()]
    windows, rng, hour_ms = LatencyWindows(), random.Random(7), 3_600_000
    tracemalloc.start()
    started = time.perf_counter()
    for second in range(3_600):
        minute = (second * 1000) // 60_000 * 60_000
        windows.apply(
            (name, minute, draw(rng) * 1000)
            for name, draw in (series[i % len(series)] for i in range(rate))
        )
    fill_s = time.perf_counter() - started
    for name, _ in series:  # the first read freezes every minute's digest (kept, measured)
        windows.quantiles(name, hour_ms - 1)
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    names = [name for name, _ in series]
    reads = [_read_ms(windows, names, hour_ms - 1, 5)]  # nothing changed since the last read
    windows.apply((name, hour_ms - 60_000, 1000.0) for name, _ in series)
    reads.append(_read_ms(windows, names, hour_ms - 1, 1))  # rebuilds the changed minutes
    minutes, buckets = windows.footprint()
    print(f"\nwindow digests after 60 min at {rate:,} events/s ({rate * 3600:,} durations):")
    print(f"  {minutes} minute digests, {buckets:,} occupied buckets, {current / 1e6:.1f} MB")
    print(
        "  one scrape's quantiles (5 series, 60 minutes merged):"
        f" {reads[0]:.1f} ms unchanged, {reads[1]:.1f} ms after a commit"
    )
    print(
        f"  filling the hour took {fill_s:.1f} s (under tracemalloc; memory includes the"
        " frozen digests)"
    )


def _read_ms(windows: LatencyWindows, names: list[str], now_ms: int, repeat: int) -> float:
    """ms for one scrape's quantiles of every series: the median of ``repeat`` reads."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for name in names:
            windows.quantiles(name, now_ms)
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)[repeat // 2]


SERIES: dict[str, tuple[str, Callable[[random.Random], float]]] = {
    "transcription": ("stage", lognormal(8, 0.6)),
    "claims_extraction": ("stage", lognormal(20, 0.8)),
    "entity_resolution": ("stage", lognormal(0.8, 1.0)),
    "draft_generation": ("stage", bimodal),
    END_TO_END_SERIES: ("e2e", lognormal(400, 0.5)),
}


if __name__ == "__main__":
    sys.exit(main())
