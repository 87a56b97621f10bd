"""The demo traffic's shape: per-stage latency, failure and AI-cost profiles, and the
``DemoConfig`` a run is built from. Data only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

RATE_LIMITED = "RateLimitError"
"""Error code of stage failures that also report ``rate_limit_hit``."""


@dataclass(frozen=True, slots=True)
class StageProfile:
    """One processing stage: lognormal latency (median ms, shape sigma), the probability
    that one attempt fails, its error codes, and the AI models it may call with their price
    in USD per unit (an audio minute for transcription, 1,000 tokens otherwise)."""

    median_ms: float
    sigma: float
    failure_p: float
    errors: tuple[str, ...]
    models: tuple[tuple[str, float], ...] = ()


DEFAULT_PROFILES: Mapping[str, StageProfile] = {
    "transcription": StageProfile(
        3500,
        0.5,
        0.05,
        ("AudioDecodeError", "TranscriptionTimeout"),
        (("whisper-large-v3", 0.006),),
    ),
    "claims_extraction": StageProfile(
        2200,
        0.45,
        0.03,
        ("ClaimsParseError", RATE_LIMITED),
        (("gpt-4o-mini", 0.0006), ("gpt-4o", 0.01)),
    ),
    "entity_resolution": StageProfile(700, 0.6, 0.02, ("EntityIndexUnavailable",)),
    "draft_generation": StageProfile(
        5000,
        0.5,
        0.08,
        ("DraftModelTimeout", "ContentFilterError", RATE_LIMITED),
        (("claude-sonnet", 0.015), ("gpt-4o", 0.01)),
    ),
}


DEFAULT_RATE = 1.0
"""New notes per second. A note is in flight about 17 s on average (stages, hand-offs,
retries, coaches disambiguating), so about 17 are in flight (peaks near 30): below the 50
of the shipped VoicePipelineQueueDepthHigh alert. At 5 per second it was about 85."""
DEFAULT_ORGS = 5


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """Traffic shape. ``rate`` is new voice notes per second; times are seconds."""

    rate: float = DEFAULT_RATE
    orgs: int = DEFAULT_ORGS
    profiles: Mapping[str, StageProfile] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    text_share: float = 0.2
    """Notes typed rather than spoken: they skip transcription."""
    retry_p: float = 0.7
    max_retries: int = 2
    disambiguation_p: float = 0.15
    confirm_p: float = 0.85
    late_share: float = 0.02
    """Notes delivered ``late_s`` after they happened (a worker flushing a backlog)."""
    late_s: tuple[float, float] = (120.0, 600.0)
    duplicate_share: float = 0.01
    """Events delivered twice with the same event_id (an at-least-once queue)."""
    budget_step_usd: float = 1.0
    """Each org reports ``budget_threshold_reached`` whenever its spend crosses a multiple."""

    def with_failures(self, failures: Mapping[str, float]) -> DemoConfig:
        profiles = {
            s: replace(p, failure_p=failures.get(s, p.failure_p)) for s, p in self.profiles.items()
        }
        return replace(self, profiles=profiles)
