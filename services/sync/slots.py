"""Requests to the ERP in flight at once: in all, and per key (one integration's rate limit).

The scheduler syncs a bounded number of clients at once, and each client fetches the months
of a batch side by side, each fetch taking a slot. While many clients are due, each gets
about one slot; when few are left (the end of a big full sync, or one client activated by
hand) those few use the slots the others left, so the ERP's latency is paid in parallel
instead of month after month.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class RequestSlots:
    def __init__(self, total: int, per_key: int) -> None:
        self._total = asyncio.Semaphore(total)
        self._per_key = per_key
        self._keys: dict[int, asyncio.Semaphore] = {}

    @asynccontextmanager
    async def slot(self, integration_id: int) -> AsyncIterator[None]:
        key = self._keys.setdefault(integration_id, asyncio.Semaphore(self._per_key))
        async with key, self._total:  # the key's first: no global slot held while waiting
            yield
