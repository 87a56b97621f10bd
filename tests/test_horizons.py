"""Horizons: from when the stored data lets an accepted event reach every snapshot."""

from __future__ import annotations

import pytest

from exporter.records import NONE, Horizons

DAY = 86_400_000
HOUR = 3_600_000


@pytest.mark.parametrize(
    ("horizons", "accept_from"),
    [
        (Horizons(), NONE),
        (Horizons(events_from_ms=10 * DAY + 5 * HOUR), 10 * DAY + 5 * HOUR),
        (Horizons(events_from_ms=10 * DAY + 5 * HOUR, hourly_from_ms=11 * DAY), 11 * DAY),
        # the daily row of a day that starts before the cutoff is gone: the whole day goes
        (Horizons(events_from_ms=DAY, daily_from_ms=20 * DAY + 1), 21 * DAY),
        (Horizons(events_from_ms=DAY, daily_from_ms=20 * DAY), 20 * DAY),
    ],
)
def test_horizons_accept_from(horizons: Horizons, accept_from: int) -> None:
    assert horizons.accept_from_ms == accept_from
