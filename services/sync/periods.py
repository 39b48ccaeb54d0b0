"""The months a client's balances are kept for, and the one rule for which accounting years
those are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @property
    def start(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def end(self) -> date:
        """First day of the next month (Tripletex's dateTo is exclusive)."""
        return date(self.year + self.month // 12, self.month % 12 + 1, 1)

    def __str__(self) -> str:
        return f"{self.year}-{self.month:02d}"


def kept_years(day: date, years: int) -> list[int]:
    """The accounting years kept as of `day`, oldest first: its year and the `years - 1`
    before it. The one rule: the sync window is these years as of the day it runs, and the
    saldobalanse (page and API) offers them as of the client's latest sync
    (services.balances.offer), so what is offered is what that sync fetched."""
    return list(range(day.year - years + 1, day.year + 1))


def window(today: date, years: int) -> list[Month]:
    """Every month of the kept accounting years up to and including this month."""
    return [
        Month(year, month)
        for year in kept_years(today, years)
        for month in range(1, 13)
        if (year, month) <= (today.year, today.month)
    ]


def current_date() -> date:
    """The sync's calendar: the server's date, as the engine, scheduler and callbacks take
    it (date.today)."""
    return date.today()


def day_of(moment: datetime) -> date:
    """A stored moment's date in the sync's calendar, so that a sync's window and the years
    read back from its time agree even in the hours UTC, the server and Oslo disagree on the
    date. Naive moments are UTC (SQLite hands back naive datetimes)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone().date()


def recent(today: date, count: int = 2) -> list[Month]:
    """This month and the ones before it: what polling re-checks."""
    months = []
    year, month = today.year, today.month
    for _ in range(count):
        months.append(Month(year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return sorted(months)
