"""Fault injection and pacing: latency, random failures, the rate limit, token lifetime.

PowerOffice documents its throttling per subscription key ("10 requests per second, for each
subscription key, regardless of the number of client keys") answered with 429; so the budget
here is one per subscription key, of `rate_limit` requests per fixed period, and a refused
request says when to come back in `Retry-After`. Unlimited unless set. The period clock is
injectable so tests can move it instead of sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from simulators.faults import ERROR_KINDS, FaultSettings, Window, count_request

__all__ = ["ERROR_KINDS", "TOKEN_LIFETIME_SECONDS", "Faults", "RateLimiter"]

# v2 access tokens live 20 minutes according to PowerOffice's developer portal (v1: 10).
TOKEN_LIFETIME_SECONDS = 1200


@dataclass
class Faults(FaultSettings):
    """Faults of the API and the token endpoint; the rate limit's bucket is a subscription
    key, counted per second as PowerOffice documents it."""

    rate_period_seconds: float = 1.0
    token_lifetime_seconds: int = TOKEN_LIFETIME_SECONDS

    def check(self) -> None:
        super().check()
        self.integer("token_lifetime_seconds")
        self.number("token_lifetime_seconds", 1)


@dataclass
class RateLimiter:
    windows: dict[str, Window] = field(default_factory=dict)

    def retry_after(self, subscription_key: str, faults: Faults, now: float) -> int | None:
        """Count one request; None while within the budget, else whole seconds to wait."""
        if faults.rate_limit is None:
            return None
        period = faults.rate_period_seconds
        window = count_request(self.windows, subscription_key, period, now)
        if window.used <= faults.rate_limit:
            return None
        return max(1, math.ceil(window.start + period - now))
