"""Fault injection and pacing: latency, Tripletex's rate limit, and random failures.

Rate limiting follows Tripletex's documentation: one budget per (consumer token, employee
token) — so every client company of one accountant key shares it — of `rate_limit` requests
per fixed period; once it is spent, every request answers 429 until the period ends. Time
comes from an injectable clock so tests can move it instead of sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from simulators.faults import ERROR_KINDS, FaultSettings, Window, count_request

__all__ = ["ERROR_KINDS", "UNLIMITED", "Faults", "RateLimiter", "RateStatus"]

# X-Rate-Limit-Limit reported while no limit is set: Tripletex always sends the headers, so
# clients see them, but the budget never runs out.
UNLIMITED = 100_000


@dataclass
class Faults(FaultSettings):
    """Faults of the /v2 API; the rate limit's bucket is a key (consumer and employee token)."""


@dataclass(frozen=True)
class RateStatus:
    limit: int
    remaining: int
    reset: int  # whole seconds left in the period
    exceeded: bool

    def headers(self) -> dict[str, str]:
        return {
            "X-Rate-Limit-Limit": str(self.limit),
            "X-Rate-Limit-Remaining": str(self.remaining),
            "X-Rate-Limit-Reset": str(self.reset),
        }


@dataclass
class RateLimiter:
    windows: dict[tuple[int, str], Window] = field(default_factory=dict)

    def hit(self, bucket: tuple[int, str], faults: Faults, now: float) -> RateStatus:
        """Count one request against the bucket's current period."""
        period = faults.rate_period_seconds
        window = count_request(self.windows, bucket, period, now)
        limit = faults.rate_limit or UNLIMITED
        reset = max(1, math.ceil(window.start + period - now))
        exceeded = faults.rate_limit is not None and window.used > faults.rate_limit
        return RateStatus(limit, max(0, limit - window.used), reset, exceeded)
