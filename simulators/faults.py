"""What every simulator can be told to do wrong (latency, random failures, a rate limit),
and the fixed-period request count behind its rate limit. Each simulator's `Faults` adds
its own settings and says how its limit is keyed and answered."""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Any, Self

# An injected failure: a 5xx in the system's error format, a 429, or a request the server
# sits on (`timeout_delay_seconds`) before answering 504, long after any sensible timeout.
ERROR_KINDS = ("500", "502", "503", "429", "timeout")


@dataclass
class FaultSettings:
    latency_seconds: float = 0.0  # added to every API request, concurrently (asyncio.sleep)
    rate_limit: int | None = None  # requests per period and bucket; None: unlimited
    rate_period_seconds: float = 60.0
    error_rate: float = 0.0  # fraction of API requests that fail with one of error_kinds
    error_kinds: tuple[str, ...] = ERROR_KINDS
    fault_seed: int = 0  # same seed and request order, same failures
    timeout_delay_seconds: float = 30.0
    _rng: random.Random = field(init=False, repr=False, compare=False)
    _rng_seed: int | None = field(default=None, init=False, repr=False, compare=False)

    def draw(self) -> str | None:
        """The failure this request gets, or None. Drawn in arrival order: a given seed and
        request sequence always fail the same requests the same way."""
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

    def updated(self, changes: dict[str, Any]) -> Self:
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
        self.number("latency_seconds", 0)
        self.number("error_rate", 0, 1)
        self.number("timeout_delay_seconds", 0)
        self.number("rate_period_seconds", 0.001)
        self.integer("fault_seed")
        if self.rate_limit is not None:
            self.integer("rate_limit")
            self.number("rate_limit", 1)
        if not set(self.error_kinds) <= set(ERROR_KINDS):
            raise ValueError(f"error_kinds must be among {list(ERROR_KINDS)}")

    def number(self, name: str, low: float, high: float = math.inf) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number")
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low} and {high}")

    def integer(self, name: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer")


@dataclass
class Window:
    """One bucket's requests in the current fixed period."""

    start: float
    used: int = 0


def count_request(windows: dict[Any, Window], bucket: Any, period: float, now: float) -> Window:
    """Count one request against the bucket's current period (a new one once it is over)."""
    window = windows.get(bucket)
    if window is None or now >= window.start + period:
        window = windows[bucket] = Window(now)
    window.used += 1
    return window
