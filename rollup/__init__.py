"""voxmon rollups: pure aggregation math, windows, retention and schedule, plus jobs."""
