"""Fault injection and pacing: latency, Tripletex's rate limit, and random failures.

Rate limiting follows Tripletex's documentation: one budget per (consumer token, employee
token) — so every client company of one accountant key shares it — of `rate_limit` requests
per fixed period; once it is spent, every request answers 429 until the period ends. Time
comes from an injectable clock so tests can move it instead of sleeping.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Any

# What an injected failure looks like: an error status with Tripletex's envelope, a 429, or a
# request the server sits on (`timeout_delay_seconds`) before a 504, long after any sensible
# client read timeout.
ERROR_KINDS = ("500", "502", "503", "429", "timeout")
# X-Rate-Limit-Limit reported while no limit is set: Tripletex always sends the headers, so
# clients see them, but the budget never runs out.
UNLIMITED = 100_000


@dataclass
class Faults:
    latency_seconds: float = 0.0  # added to every /v2 request, concurrently (asyncio.sleep)
    rate_limit: int | None = None  # requests per period and key; None = unlimited
    rate_period_seconds: float = 60.0
    error_rate: float = 0.0  # fraction of /v2 requests that fail with one of error_kinds
    error_kinds: tuple[str, ...] = ERROR_KINDS
    fault_seed: int = 0  # same seed, same sequence of failures
    timeout_delay_seconds: float = 30.0
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _rng_seed: int | None = field(default=None, init=False, repr=False, compare=False)

    def draw(self) -> str | None:
        """The failure this request gets, or None. One or two draws per request, in arrival
        order: a given seed and request sequence always fail the same requests the same way."""
        if self.error_rate <= 0 or not self.error_kinds:
            return None
        if self._rng_seed != self.fault_seed:  # (re)seed lazily, also after `fault_seed = n`
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
        """A copy with `changes` (JSON field names) applied; ValueError on a bad field or value.
        A copy rather than in-place changes, so the failure sequence restarts from the seed."""
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
        for name in ("rate_limit", "fault_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | None):
                raise ValueError(f"{name} must be an integer")
        if self.rate_limit is not None:
            number("rate_limit", 1)
        if self.fault_seed is None:
            raise ValueError("fault_seed must be an integer")
        if not set(self.error_kinds) <= set(ERROR_KINDS):
            raise ValueError(f"error_kinds must be among {list(ERROR_KINDS)}")


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
class _Window:
    start: float
    used: int = 0


@dataclass
class RateLimiter:
    windows: dict[tuple[int, str], _Window] = field(default_factory=dict)

    def hit(self, bucket: tuple[int, str], faults: Faults, now: float) -> RateStatus:
        """Count one request against the bucket's current period."""
        period = faults.rate_period_seconds
        window = self.windows.get(bucket)
        if window is None or now >= window.start + period:
            window = self.windows[bucket] = _Window(now)
        window.used += 1
        limit = faults.rate_limit or UNLIMITED
        reset = max(1, math.ceil(window.start + period - now))
        exceeded = faults.rate_limit is not None and window.used > faults.rate_limit
        return RateStatus(limit, max(0, limit - window.used), reset, exceeded)
