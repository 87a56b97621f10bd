"""voxmon's own metrics (``voxmon_*``): ingest, queue, commits, database. The rollup job
families come from stored run records (``jobstatus.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH_BUCKETS = (1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 20000)
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True, slots=True)
class SelfMetrics:
    """Handles to every self metric, registered on one registry."""

    requests: Counter
    events: Counter
    rejected: Counter
    warnings: Counter
    durations_discarded: Counter
    queue_depth: Gauge
    commit_events: Histogram
    commit_seconds: Histogram
    database_bytes: Gauge
    internal_errors: Counter
    snapshot_rows: Gauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> SelfMetrics:
        return cls(
            requests=Counter(
                "voxmon_ingest_requests", "Ingest HTTP requests by status code.",
                ["code"], registry=registry,
            ),
            events=Counter(
                "voxmon_ingest_events", "Ingested items by result.",
                ["result"], registry=registry,
            ),
            rejected=Counter(
                "voxmon_ingest_rejected", "Rejected items by reason.",
                ["reason"], registry=registry,
            ),
            warnings=Counter(
                "voxmon_ingest_warnings", "Accepted items stored with something dropped,"
                " by reason (duration_over_max: duration over max_duration_days).",
                ["reason"], registry=registry,
            ),
            durations_discarded=Counter(
                "voxmon_derived_durations_discarded", "Durations derived from earlier events"
                " left unset as over max_duration_days, by the source they came from.",
                ["source"], registry=registry,
            ),
            queue_depth=Gauge(
                "voxmon_ingest_queue_depth", "Events waiting for the writer.", registry=registry
            ),
            commit_events=Histogram(
                "voxmon_commit_batch_events", "Events per group commit.",
                buckets=_BATCH_BUCKETS, registry=registry,
            ),
            commit_seconds=Histogram(
                "voxmon_commit_duration_seconds", "Duration of one group commit.",
                buckets=_COMMIT_BUCKETS, registry=registry,
            ),
            database_bytes=Gauge(
                "voxmon_database_size_bytes", "SQLite database file plus WAL.",
                registry=registry,
            ),
            internal_errors=Counter(
                "voxmon_http_internal_errors", "Requests that ended in an unhandled error (500);"
                " any increase is a voxmon bug.", registry=registry,
            ),
            snapshot_rows=Gauge(
                "voxmon_snapshot_rows", "Stored snapshot rows by period.",
                ["period"], registry=registry,
            ),
        )  # fmt: skip
