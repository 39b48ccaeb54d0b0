"""The postings behind an account's figure in the saldobalanse (drill-down to the hovedbok).

Fetched from the client's system on demand and kept a short while (a minute), so the
accountant going back and forth between the saldobalanse and an account costs the system
one request, not one per click. The stored movement is compared with the postings' sum:
when they differ, the system has changed since our last sync.

For a SAF-T client the postings are the imported files' transaction lines
(services/saft/lines.py), read from our database; their sum is compared the same way (a
month imported before lines were kept has none).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlmodel.ext.asyncio.session import AsyncSession

from services import balances
from services.balances import Period
from services.connectors.base import CompanyRef, RemotePosting, ReportsPostings
from services.saft import lines as saft_lines

ZERO = Decimal("0.00")
CACHE_SECONDS = 60.0
CACHE_SIZE = 256  # entries; the oldest goes first


def period_dates(period: Period) -> tuple[date, date]:
    """The first day of the period and the day after it (exclusive)."""
    last = period.last_month
    return date(period.year, period.first_month, 1), date(
        period.year + last // 12, last % 12 + 1, 1
    )


CacheKey = tuple[int, int, date, date]  # client, account number, from, to (exclusive)


class PostingsCache:
    """Fetched postings by client, account and period, for `seconds`; at most `size`."""

    def __init__(
        self,
        seconds: float = CACHE_SECONDS,
        size: int = CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[CacheKey, tuple[float, list[RemotePosting]]] = OrderedDict()

    def get(self, key: CacheKey) -> list[RemotePosting] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        fetched, postings = entry
        if self._clock() - fetched > self._seconds:
            del self._entries[key]
            return None
        return postings

    def put(self, key: CacheKey, postings: list[RemotePosting]) -> None:
        self._entries[key] = (self._clock(), postings)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class AccountPostings:
    """An account's postings in a period, beside what we stored for it."""

    postings: list[RemotePosting]
    total: Decimal  # the postings' sum
    stored_movement: Decimal  # the saldobalanse's movement for the account and period

    @property
    def matches(self) -> bool:
        return self.total == self.stored_movement


async def stored_movement(db: AsyncSession, client_id: int, number: int, period: Period) -> Decimal:
    lines = await balances.trial_balance(
        db, client_id, period.year, period.first_month, period.last_month
    )
    return next((line.movement for line in lines if line.account_number == number), ZERO)


async def account_postings(
    db: AsyncSession,
    cache: PostingsCache,
    connector: ReportsPostings,
    key: str,
    company: CompanyRef,
    client_id: int,
    number: int,
    period: Period,
) -> AccountPostings:
    """The postings (from the cache, else the system; raises the connector's ErpError) and
    the stored movement they should sum to."""
    date_from, date_to = period_dates(period)
    cache_key = (client_id, number, date_from, date_to)
    postings = cache.get(cache_key)
    if postings is None:
        postings = await connector.fetch_postings(key, company, number, date_from, date_to)
        cache.put(cache_key, postings)
    total = sum((p.amount for p in postings), ZERO)
    return AccountPostings(postings, total, await stored_movement(db, client_id, number, period))


async def imported_postings(
    db: AsyncSession, client_id: int, number: int, period: Period
) -> AccountPostings:
    """A SAF-T client's postings: the imported lines of the account in the period's months
    (by PeriodYear and Period, as the movements are counted), by date."""
    rows = await saft_lines.account_lines(
        db, client_id, number, period.year, period.first_month, period.last_month
    )
    postings = [RemotePosting(r.posted_on, r.voucher, r.description, r.amount) for r in rows]
    total = sum((p.amount for p in postings), ZERO)
    return AccountPostings(postings, total, await stored_movement(db, client_id, number, period))
