"""Reading a client's synced data: the saldobalanse for a month or a range of months, the
chart of accounts, and the sync history.

The saldobalanse has one read model, for the client page and the API alike: `offer` says
which accounting years a client has and which period is shown by default, and
`trial_balance_report` builds the report for a period. Stored are each year's opening
balances and each month's movements; balance in and out of any period follow from them
exactly (Decimal all the way, never float)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Account, MonthMovement, SyncRun, YearOpening
from services.sync import periods

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
MONTHS = (
    "januar", "februar", "mars", "april", "mai", "juni",
    "juli", "august", "september", "oktober", "november", "desember",
)  # fmt: skip


@dataclass(frozen=True)
class BalanceLine:
    account_number: int
    opening: Decimal  # balance in
    movement: Decimal
    closing: Decimal  # balance out


async def trial_balance(
    db: AsyncSession, client_id: int, year: int, first_month: int, last_month: int
) -> list[BalanceLine]:
    """Per account with any balance: in at the start of `first_month`, the movement through
    `last_month`, and out. Months within one accounting year, because result accounts start
    each year at zero."""
    if not 1 <= first_month <= last_month <= 12:
        raise ValueError("months must satisfy 1 <= first <= last <= 12")
    opening = await _sums(
        db,
        select(YearOpening.account_number, YearOpening.amount).where(
            col(YearOpening.client_id) == client_id, col(YearOpening.year) == year
        ),
    )
    before = await _movement_sums(db, client_id, year, 1, first_month - 1)
    during = await _movement_sums(db, client_id, year, first_month, last_month)
    lines = []
    for number in sorted(opening.keys() | before.keys() | during.keys()):
        balance_in = opening.get(number, ZERO) + before.get(number, ZERO)
        movement = during.get(number, ZERO)
        lines.append(BalanceLine(number, balance_in, movement, balance_in + movement))
    return lines


async def _movement_sums(
    db: AsyncSession, client_id: int, year: int, first: int, last: int
) -> dict[int, Decimal]:
    if first > last:
        return {}
    return await _sums(
        db,
        select(MonthMovement.account_number, func.sum(MonthMovement.amount))
        .where(
            col(MonthMovement.client_id) == client_id,
            col(MonthMovement.year) == year,
            col(MonthMovement.month) >= first,
            col(MonthMovement.month) <= last,
        )
        .group_by(col(MonthMovement.account_number)),
    )


async def _sums(db: AsyncSession, query: object) -> dict[int, Decimal]:
    rows = (await db.exec(query)).all()  # type: ignore[call-overload]
    return {number: amount for number, amount in rows}


# -- the saldobalanse as the client page and the API show it -------------------------------


@dataclass(frozen=True)
class Period:
    """Months `first_month` through `last_month` of one accounting year."""

    year: int
    first_month: int
    last_month: int

    @property
    def label(self) -> str:
        """'mars 2025' or 'januar–mars 2025'."""
        first, last = MONTHS[self.first_month - 1], MONTHS[self.last_month - 1]
        if self.first_month == self.last_month:
            return f"{first} {self.year}"
        return f"{first}–{last} {self.year}"


class PeriodError(ValueError):
    """Parameters that name no period we have; `message` is for the accountant (Norwegian)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Offer:
    """The periods a client's saldobalanse is there for."""

    years: list[int]  # the kept accounting years, oldest first
    default: Period  # shown when none is asked for


def offer(synced_at: datetime | None, years: int) -> Offer:
    """The accounting years kept as of the client's latest sync, and that sync's month as
    the default (the current month while syncs keep running).

    Why the latest sync and not today: balances are written only by syncs, and a sync
    fetches the years kept as of the day it runs (periods.window), so these are the years
    the client has data for. Counted from today they would differ from the data between new
    year and the client's first sync of the year (and for good once its syncs stop): the
    new year offered with no opening balances fetched yet, an all-zero saldobalanse that
    looks real, and the oldest year refused while it is still there. The page and the API
    both ask this, so around new year they agree with each other and with the data. The
    sync's day is read in the calendar the sync counted its window in (periods.day_of), so
    a sync just after midnight in Oslo, still the old year on a UTC server, is no exception.

    Never synced: the years its first sync will fetch, counted from today (all empty)."""
    day = periods.current_date() if synced_at is None else periods.day_of(synced_at)
    return Offer(periods.kept_years(day, years), Period(day.year, day.month, day.month))


async def imported_offer(db: AsyncSession, client_id: int, latest: Period | None) -> Offer:
    """The saldobalanse of a client whose data arrives as files: every year its files
    brought, whatever its age (the sync window does not apply to imported files), and the
    latest file's last month as the default."""
    years_with_data = select(YearOpening.year).where(col(YearOpening.client_id) == client_id)
    years_with_data = years_with_data.union(
        select(MonthMovement.year).where(col(MonthMovement.client_id) == client_id)
    )
    rows = (await db.exec(years_with_data)).all()  # type: ignore[call-overload]
    years = sorted(year for (year,) in rows)
    today = periods.current_date()
    default = latest or Period(today.year, today.month, today.month)
    if default.year not in years:
        years = sorted({*years, default.year})
    return Offer(years, default)


def parse_period(
    year: str | None,
    first_month: str | None,
    last_month: str | None,
    *,
    years: Sequence[int],
    default: Period,
) -> Period:
    """A period from the form's raw values. A missing year is the default's; with one month
    missing, the period is the other month alone; with both, the default's. Raises
    PeriodError saying what is wrong."""
    parsed_year = _number(year, "Året")
    first = _number(first_month, "Fra måned")
    last = _number(last_month, "Til måned")
    if parsed_year is None:
        parsed_year = default.year
    if first is None and last is None:
        first, last = default.first_month, default.last_month
    elif first is None or last is None:
        first = last = first if last is None else last  # one month given: that month
    for value, name in ((first, "Fra måned"), (last, "Til måned")):
        if not 1 <= value <= 12:
            raise PeriodError(f"{name} må være et tall fra 1 til 12.")
    if first > last:
        raise PeriodError("Fra måned kan ikke være etter Til måned. Velg måneder i samme år.")
    if parsed_year not in years:
        contiguous = len(years) == max(years) - min(years) + 1
        span = (
            f"{min(years)}–{max(years)}"
            if len(years) > 1 and contiguous
            else ", ".join(map(str, years))
        )
        raise PeriodError(f"Saldobalansen finnes bare for {span}, årene som er hentet.")
    return Period(parsed_year, first, last)


def _number(raw: str | None, name: str) -> int | None:
    text = (raw or "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 4:
        raise PeriodError(f"{name} må være et tall.")
    return int(text)


@dataclass(frozen=True)
class BalanceRow:
    number: int
    name: str | None  # None: no such account in the stored chart of accounts
    opening: Decimal
    movement: Decimal
    closing: Decimal


@dataclass(frozen=True)
class TrialBalance:
    period: Period
    rows: list[BalanceRow]
    opening: Decimal  # totals: each 0.00 for a balanced ledger
    movement: Decimal
    closing: Decimal

    @property
    def balanced(self) -> bool:
        return self.opening == self.movement == self.closing == ZERO


async def trial_balance_report(db: AsyncSession, client_id: int, period: Period) -> TrialBalance:
    """The saldobalanse for a period with the accounts' names and the totals (Sum), as the
    page and the API show it. Accounts whose balance in and movement are both zero (so
    balance out too) are left out, as Tripletex does."""
    lines = await trial_balance(db, client_id, period.year, period.first_month, period.last_month)
    names = await account_names(db, client_id)
    rows = [
        BalanceRow(
            line.account_number,
            names.get(line.account_number),
            line.opening,
            line.movement,
            line.closing,
        )
        for line in lines
        if line.opening or line.movement
    ]
    return TrialBalance(
        period=period,
        rows=rows,
        opening=sum((r.opening for r in rows), ZERO),
        movement=sum((r.movement for r in rows), ZERO),
        closing=sum((r.closing for r in rows), ZERO),
    )


async def account_names(db: AsyncSession, client_id: int) -> dict[int, str]:
    """Account number → name; an account still in the ERP wins over one flagged removed."""
    rows = await db.exec(
        select(Account.number, Account.name)
        .where(col(Account.client_id) == client_id)
        # Live accounts last, so their name wins over a removed account's with that number.
        .order_by(col(Account.removed_at).is_(None), col(Account.id))
    )
    return dict(rows.all())


async def chart_of_accounts(db: AsyncSession, client_id: int) -> list[Account]:
    rows = await db.exec(
        select(Account)
        .where(col(Account.client_id) == client_id)
        .order_by(col(Account.number), col(Account.id))
    )
    return list(rows.all())


async def sync_history(db: AsyncSession, client_id: int, limit: int = 20) -> list[SyncRun]:
    """The client's latest sync runs, newest first."""
    rows = await db.exec(
        select(SyncRun)
        .where(col(SyncRun.client_id) == client_id)
        .order_by(col(SyncRun.started_at).desc(), col(SyncRun.id).desc())
        .limit(limit)
    )
    return list(rows.all())


def format_amount(amount: Decimal) -> str:
    """Norwegian style: 1234567.8 → '1 234 567,80', -5 → '-5,00' (no-break spaces)."""
    cents = amount.quantize(CENT)
    sign = "-" if cents < 0 else ""
    whole, _, fraction = f"{abs(cents):.2f}".partition(".")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return sign + "\u00a0".join(groups) + "," + fraction
