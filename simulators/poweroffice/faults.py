"""Fault injection and pacing: latency, random failures, the rate limit, token lifetime.

PowerOffice documents its throttling per subscription key ("10 requests per second, for each
subscription key, regardless of the number of client keys") answered with 429; so the budget
here is one per subscription key, of `rate_limit` requests per fixed period, and a refused
request says when to come back in `Retry-After`. Unlimited unless set. The period clock is
injectable so tests can move it instead of sleeping.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Any

# An injected failure: a 5xx ProblemDetails, a 429, or a request the server sits on
# (`timeout_delay_seconds`) before answering 504, long after any sensible read timeout.
ERROR_KINDS = ("500", "502", "503", "429", "timeout")
# v2 access tokens live 20 minutes according to PowerOffice's developer portal (v1: 10).
TOKEN_LIFETIME_SECONDS = 1200


@dataclass
class Faults:
    latency_seconds: float = 0.0  # added to every API and token request (asyncio.sleep)
    error_rate: float = 0.0  # fraction of API and token requests failing with error_kinds
    error_kinds: tuple[str, ...] = ERROR_KINDS
    fault_seed: int = 0  # same seed and request order, same failures
    timeout_delay_seconds: float = 30.0
    rate_limit: int | None = None  # requests per period and subscription key; None: unlimited
    rate_period_seconds: float = 1.0
    token_lifetime_seconds: int = TOKEN_LIFETIME_SECONDS
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _rng_seed: int | None = field(default=None, init=False, repr=False, compare=False)

    def draw(self) -> str | None:
        """The failure this request gets, or None, drawn in arrival order."""
        if self.error_rate <= 0 or not self.error_kinds:
            return None
        if self._rng_seed != self.fault_seed:
            self._rng, self._rng_seed = random.Random(self.fault_seed), self.fault_seed
        if self._rng.random() >= self.error_rate:
            return None
        return self._rng.choice(self.error_kinds)

    def to_json(self) -> dict[str, Any]:
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
            for f in dataclasses.fields(self)
            if not f.name.startswith("_")
        }

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with `changes` applied (the failure sequence restarts from the seed);
        ValueError on an unknown field or a bad value."""
        known = {f.name for f in dataclasses.fields(self) if not f.name.startswith("_")}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        new = dataclasses.replace(self, **changes)
        new.error_kinds = tuple(new.error_kinds)
        new.check()
        return new

    def check(self) -> None:
        def number(name: str, low: float, high: float = math.inf) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number")
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}")

        number("latency_seconds", 0)
        number("error_rate", 0, 1)
        number("timeout_delay_seconds", 0)
        number("rate_period_seconds", 0.001)
        for name in ("fault_seed", "token_lifetime_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an integer")
        number("token_lifetime_seconds", 1)
        if self.rate_limit is not None:
            if isinstance(self.rate_limit, bool) or not isinstance(self.rate_limit, int):
                raise ValueError("rate_limit must be an integer or null")
            number("rate_limit", 1)
        if not set(self.error_kinds) <= set(ERROR_KINDS):
            raise ValueError(f"error_kinds must be among {list(ERROR_KINDS)}")


@dataclass
class _Window:
    start: float
    used: int = 0


@dataclass
class RateLimiter:
    windows: dict[str, _Window] = field(default_factory=dict)

    def retry_after(self, subscription_key: str, faults: Faults, now: float) -> int | None:
        """Count one request; None while within the budget, else whole seconds to wait."""
        if faults.rate_limit is None:
            return None
        period = faults.rate_period_seconds
        window = self.windows.get(subscription_key)
        if window is None or now >= window.start + period:
            window = self.windows[subscription_key] = _Window(now)
        window.used += 1
        if window.used <= faults.rate_limit:
            return None
        return max(1, math.ceil(window.start + period - now))
