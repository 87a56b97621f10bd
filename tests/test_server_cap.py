"""The connection cap under a descriptor limit: the reserve kept for the database and one
accept batch shrinks with a low limit instead of leaving room for a single connection."""

from __future__ import annotations

import pytest

from exporter.http.server import connection_cap


@pytest.mark.parametrize(
    ("descriptors", "max_connections", "cap"),
    [
        (128, 1000, 64),  # half the limit kept free, not all of it
        (256, 1000, 128),
        (384, 1000, 192),  # from here on the full reserve of 192
        (1024, 1000, 832),
        (65536, 1000, 1000),  # max_connections decides
        (8, 1000, 4),
    ],
)
def test_connection_cap_keeps_a_reserve_scaled_to_the_descriptor_limit(
    descriptors: int, max_connections: int, cap: int
) -> None:
    assert connection_cap(descriptors, max_connections) == cap
