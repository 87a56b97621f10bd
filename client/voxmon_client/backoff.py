"""How long the sender waits before a retry: exponential backoff with equal jitter, with the
server's ``Retry-After`` as a lower bound."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with equal jitter: attempt n waits in [d/2, d] seconds where
    d = min(cap_s, base_s * 2**n); a ``Retry-After`` from the server is a lower bound
    (clipped to ``max_retry_after_s`` so a bad header cannot stall the client)."""

    base_s: float = 0.1
    cap_s: float = 5.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after_s: float, rng: random.Random) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt, 60))
        jittered = ceiling / 2 + rng.uniform(0, ceiling / 2)
        return float(max(jittered, min(retry_after_s, self.max_retry_after_s)))
