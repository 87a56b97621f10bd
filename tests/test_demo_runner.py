"""The demo's exit status from the client's counts: every way an event can be lost by
voxmon or the client fails the run, except Ctrl-C."""

from __future__ import annotations

import pytest
from voxmon_client import ClientStats

from exporter.demo.runner import exit_status


def stats(**counts: int) -> ClientStats:
    names = ("emitted", "accepted", "duplicates", "rejected", "dropped", "abandoned", "failed")
    return ClientStats(**{**dict.fromkeys((*names, "pending", "retries"), 0), **counts})


@pytest.mark.parametrize(
    ("counts", "interrupted", "code"),
    [
        ({"emitted": 10, "accepted": 10}, False, 0),
        ({"emitted": 10, "accepted": 8, "duplicates": 2, "retries": 3}, False, 0),
        ({"emitted": 10, "accepted": 9, "dropped": 1}, False, 0),
        ({"emitted": 10, "accepted": 9, "rejected": 1}, False, 1),
        ({"emitted": 10, "accepted": 9, "abandoned": 1}, False, 1),
        ({"emitted": 10, "accepted": 9, "failed": 1}, False, 1),
        ({"emitted": 10, "accepted": 5, "failed": 5}, True, 0),
    ],
)
def test_demo_exit_status_counts_failed_like_rejected_and_abandoned(
    counts: dict[str, int], interrupted: bool, code: int
) -> None:
    assert exit_status(stats(**counts), interrupted) == code
