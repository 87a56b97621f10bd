"""voxmon daemon: ingest, storage, live counters, Prometheus exposition and HTTP API."""
