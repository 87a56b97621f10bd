"""The ``voxmon_rollup_*`` metric families, read from the stored job run records rather
than counted in this process, so a run by the CLI (``voxmon rollup``/``cleanup``) beside
the daemon moves them too, and they survive restarts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from exporter.records import JobRun


class JobRunsCollector(Collector):
    """Yields run counts, last success and run time per job from the cached records;
    ``update`` replaces the cache (after each run and before each scrape)."""

    def __init__(self, jobs: Sequence[str]) -> None:
        self._jobs = tuple(jobs)
        self.runs: dict[str, JobRun] = {}

    def update(self, runs: Mapping[str, JobRun]) -> None:
        self.runs = {**self.runs, **runs}

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "voxmon_rollup_runs",
            "Rollup and cleanup job runs by job and result (daemon, API and CLI runs).",
            labels=["job", "result"],
        )
        seconds = SummaryMetricFamily(
            "voxmon_rollup_duration_seconds",
            "Time spent in rollup and cleanup job runs.",
            labels=["job"],
        )
        last_success = GaugeMetricFamily(
            "voxmon_rollup_last_success_timestamp_seconds",
            "Unix time of each job's last successful run.",
            labels=["job"],
        )
        for job in sorted({*self._jobs, *self.runs}):
            run = self.runs.get(job)
            successes, failures = (run.successes, run.failures) if run else (0, 0)
            runs.add_metric([job, "success"], successes)
            runs.add_metric([job, "failure"], failures)
            seconds.add_metric([job], successes + failures, run.seconds_total if run else 0.0)
            if run is not None and run.last_success_ms is not None:
                last_success.add_metric([job], run.last_success_ms / 1000)
        yield runs
        yield seconds
        yield last_success
