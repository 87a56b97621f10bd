"""voxmon's own metrics (``voxmon_*``): ingest, queue, commits, database. The rollup job
families come from stored run records (``rollup/metrics.py``).

Each metric is declared once, on its ``SelfMetrics`` field: kind, name, help, labels and
buckets; ``SelfMetrics.register`` builds them all from those declarations."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BATCH_BUCKETS = (1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 20000)
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def declare(
    kind: type[Counter | Gauge | Histogram],
    name: str,
    documentation: str,
    labels: tuple[str, ...] = (),
    **options: Any,
) -> Any:
    """A ``SelfMetrics`` field declaring one metric (built by ``register``)."""
    spec = (kind, name, documentation, {"labelnames": labels, **options})
    return field(metadata={"metric": spec})


@dataclass(frozen=True, slots=True)
class SelfMetrics:
    """Handles to every self metric, registered on one registry."""

    requests: Counter = declare(
        Counter, "voxmon_ingest_requests", "Ingest HTTP requests by status code.", ("code",)
    )
    events: Counter = declare(
        Counter, "voxmon_ingest_events", "Ingested items by result.", ("result",)
    )
    rejected: Counter = declare(
        Counter, "voxmon_ingest_rejected", "Rejected items by reason.", ("reason",)
    )
    warnings: Counter = declare(
        Counter, "voxmon_ingest_warnings", "Accepted items stored with something dropped,"
        " by reason (duration_over_max: duration over max_duration_days).", ("reason",),
    )  # fmt: skip
    durations_discarded: Counter = declare(
        Counter, "voxmon_derived_durations_discarded", "Durations derived from earlier events"
        " left unset as over max_duration_days, by the source they came from.", ("source",),
    )  # fmt: skip
    queue_depth: Gauge = declare(
        Gauge, "voxmon_ingest_queue_depth", "Events waiting for the writer."
    )
    commit_events: Histogram = declare(
        Histogram, "voxmon_commit_batch_events", "Events per group commit.",
        buckets=_BATCH_BUCKETS,
    )  # fmt: skip
    commit_seconds: Histogram = declare(
        Histogram, "voxmon_commit_duration_seconds", "Duration of one group commit.",
        buckets=_COMMIT_BUCKETS,
    )  # fmt: skip
    commit_wait: Counter = declare(
        Counter, "voxmon_commit_wait_seconds", "Time group commits waited, before starting,"
        " for the clients the previous commit answered to post again (commit_delay_ms).",
    )  # fmt: skip
    database_bytes: Gauge = declare(
        Gauge, "voxmon_database_size_bytes",
        "Database size: the SQLite file plus WAL, or the PostgreSQL database.",
    )  # fmt: skip
    leader: Gauge = declare(
        Gauge, "voxmon_leader", "1 on the replica that runs the scheduled jobs (the only"
        " daemon on SQLite), else 0.",
    )  # fmt: skip
    instance_info: Gauge = declare(
        Gauge, "voxmon_instance_info", "Always 1; instance_id names this replica.",
        ("instance_id",),
    )  # fmt: skip
    internal_errors: Counter = declare(
        Counter, "voxmon_http_internal_errors", "Requests that ended in an unhandled error"
        " (500); any increase is a voxmon bug.",
    )  # fmt: skip
    snapshot_rows: Gauge = declare(
        Gauge, "voxmon_snapshot_rows", "Stored snapshot rows by period.", ("period",)
    )
    storage_healthy: Gauge = declare(
        Gauge, "voxmon_storage_healthy",
        "1 while the database takes writes, 0 while commits fail (see /readyz).",
    )  # fmt: skip
    storage_errors: Counter = declare(
        Counter, "voxmon_storage_errors", "Failed commits and storage probes by kind.",
        ("kind",),
    )  # fmt: skip

    @classmethod
    def register(cls, registry: CollectorRegistry) -> SelfMetrics:
        """Every declared metric, registered on ``registry``."""
        built = {}
        for declared in fields(cls):
            kind, name, documentation, options = declared.metadata["metric"]
            built[declared.name] = kind(name, documentation, registry=registry, **options)
        return cls(**built)
