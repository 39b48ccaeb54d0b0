"""Pacing requests to one rate-limit budget from the ERP's own headers.

Tripletex limits requests per key and period and says how it stands on every response
(`X-Rate-Limit-Limit`, `-Remaining`, `-Reset` in seconds). Once the limit is hit it answers
429 to everything until the period ends, so running into the wall costs the rest of the
period. A budget is shared by every request made with one key (all clients of one
integration, whichever task makes them): while plenty is left it adds nothing; once less
than a fifth is left it spreads what remains evenly over the seconds until the reset, and
after a 429 it holds every request until the reset.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

SLOW_DOWN_BELOW = 0.2  # of the limit left in the period
MARGIN = 2  # requests kept in hand for those already in flight


class RateBudget:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._interval = 0.0  # seconds between requests while slowing down
        self._next = 0.0  # the earliest moment the next request may go
        self.waited = 0.0  # total seconds requests were held back (for metrics and tests)

    async def wait_turn(self) -> None:
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            self.waited += slot - now
            await asyncio.sleep(slot - now)

    def observe(self, headers: Mapping[str, str]) -> None:
        limit = _number(headers.get("X-Rate-Limit-Limit"))
        remaining = _number(headers.get("X-Rate-Limit-Remaining"))
        reset = _number(headers.get("X-Rate-Limit-Reset"))
        if limit is None or remaining is None or reset is None or limit <= 0:
            return
        if remaining > limit * SLOW_DOWN_BELOW:
            self._interval = 0.0
        else:
            self._interval = reset / max(remaining - MARGIN, 1)

    def hold(self, seconds: float) -> None:
        """The limit was hit: nothing goes before the period resets."""
        self._next = max(self._next, self._clock() + seconds)
        self._interval = 0.0  # a new period starts with a full budget


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
