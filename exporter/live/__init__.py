"""Live state: 60-minute windows, monotonic counters, in-flight notes, organisation caps,
and the Prometheus collector that reads them."""
