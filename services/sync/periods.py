"""The months a client's balances are kept for."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


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


def window(today: date, years: int) -> list[Month]:
    """Every month of the last `years` accounting years up to and including this month."""
    first_year = today.year - years + 1
    return [
        Month(year, month)
        for year in range(first_year, today.year + 1)
        for month in range(1, 13)
        if (year, month) <= (today.year, today.month)
    ]


def recent(today: date, count: int = 2) -> list[Month]:
    """This month and the ones before it: what polling re-checks."""
    months = []
    year, month = today.year, today.month
    for _ in range(count):
        months.append(Month(year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return sorted(months)
