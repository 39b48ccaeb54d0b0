"""Reading a client's synced data: the saldobalanse for a month or a range of months, the
chart of accounts, and the sync history.

The saldobalanse has one read model, for the client page and the API alike: `offer` says
which accounting years a client has and which period is shown by default, and
`trial_balance_report` builds the report for a period. Stored are each year's opening
balances and each month's movements; balance in and out of any period follow from them
exactly (Decimal all the way, never float)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


# -- the saldobalanse in the shape of the accounts (NS 4102) --------------------------------

# Norsk Standard 4102's account classes, read from an account number's first digit (the
# same in a 4-digit chart and a 5-digit one). Classes 1–2 are balance accounts, 3–8 result
# accounts. 6 and 7 are both "andre driftskostnader" in the standard.
ACCOUNT_CLASSES = {
    1: "Eiendeler",
    2: "Egenkapital og gjeld",
    3: "Salgs- og driftsinntekt",
    4: "Varekostnad",
    5: "Lønnskostnad",
    6: "Andre driftskostnader",
    7: "Andre driftskostnader",
    8: "Finansposter og skatt",
}
BALANCE_CLASSES = (1, 2)
RESULT_CLASSES = (3, 4, 5, 6, 7, 8)
# 88 (årsresultat) and 89 (overføringer og disponeringer) hold the year-end closing that
# moves the result to equity. They are result accounts, but counted into the result they
# would make a closed year's årsresultat zero, so they are shown after it, on their own.
DISPOSITION_PREFIXES = ("88", "89")


@dataclass(frozen=True)
class Figures:
    """An account's or a sum's balance in, movement and balance out for one period."""

    opening: Decimal
    movement: Decimal
    closing: Decimal

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            self.opening + other.opening,
            self.movement + other.movement,
            self.closing + other.closing,
        )


NO_FIGURES = Figures(ZERO, ZERO, ZERO)


def _sum(figures: Iterable[Figures]) -> Figures:
    return sum(figures, NO_FIGURES)


@dataclass(frozen=True)
class Compared:
    """Figures for the period shown (`now`) and, when compared, for the same months of the
    year before (`before`, None when not compared)."""

    now: Figures
    before: Figures | None

    @property
    def change(self) -> Decimal | None:
        """Balance out now less balance out a year before."""
        return None if self.before is None else self.now.closing - self.before.closing


@dataclass(frozen=True)
class Line(Compared):
    number: int
    name: str | None  # None: no such account in the stored chart of accounts


@dataclass(frozen=True)
class Subtotal(Compared):
    label: str
    note: str = ""  # said after the label, smaller: how to read the figure


@dataclass(frozen=True)
class Group:
    """The accounts of one class (or of the accounts outside the classes) and their sum."""

    lines: list[Line]
    total: Subtotal


@dataclass(frozen=True)
class Section:
    """Balanse, Resultat, …: its groups, then the section's own totals."""

    key: str
    title: str
    scope: str  # which accounts, e.g. "klasse 1–2"
    groups: list[Group]
    totals: list[Subtotal]


@dataclass(frozen=True)
class Structured:
    """The saldobalanse grouped: balance and result accounts apart, a sum per account
    class, Sum balanse, Årsresultat, and the total (Sum) of every line shown."""

    period: Period
    previous: Period | None  # the same months a year before, when compared
    sections: list[Section]
    result: Subtotal  # årsresultat, ledger sign: negative is a profit
    total: Subtotal  # every line shown: 0,00 for a balanced ledger

    @property
    def lines(self) -> list[Line]:
        return [line for s in self.sections for g in s.groups for line in g.lines]


def account_class(number: int) -> int:
    """The NS 4102 class: the account number's first digit (1920 → 1, 30000 → 3)."""
    return int(str(number)[0])


def is_disposition(number: int) -> bool:
    """Årsresultat, overføringer og disponeringer: 88xx–89xx (or 88xxx–89xxx)."""
    return number >= 10 and str(number)[:2] in DISPOSITION_PREFIXES


def previous_period(period: Period) -> Period:
    return Period(period.year - 1, period.first_month, period.last_month)


def structure(report: TrialBalance, previous: TrialBalance | None = None) -> Structured:
    """The report's rows grouped as an accountant reads a saldobalanse (NS 4102), beside
    the same period of the year before when `previous` is given. With a comparison the
    lines are every account that has figures in either period, zero where it has none, so
    each column's sums are the sums of that year's own rows. Every sum is a sum of the
    lines shown (Decimal), so the groups add up to Sum exactly.

    Sign: as the ledger has it (debit positive, credit negative), as in Tripletex's and
    PowerOffice's saldobalanse, so income and a profit are negative. Flipped, the
    accountant's check would no longer hold on the page: Sum balanse plus årsresultat (plus
    any year-end disposition) is Sum, 0,00. The result line says how to read it, and the
    page says the result in words (`result_in_words`)."""
    compared = previous is not None
    now_rows = {row.number: row for row in report.rows}
    old_rows = {row.number: row for row in previous.rows} if previous else {}

    def figures(row: BalanceRow | None) -> Figures:
        return NO_FIGURES if row is None else Figures(row.opening, row.movement, row.closing)

    lines = []
    for number in sorted(now_rows.keys() | old_rows.keys()):
        row, old = now_rows.get(number), old_rows.get(number)
        name = row.name if row is not None else old.name if old is not None else None
        before = figures(old) if compared else None
        lines.append(Line(figures(row), before, number, name))

    def subtotal(chosen: Sequence[Compared], label: str, note: str = "") -> Subtotal:
        before = _sum(c.before for c in chosen if c.before is not None) if compared else None
        return Subtotal(_sum(c.now for c in chosen), before, label, note)

    def groups(classes: Sequence[int]) -> list[Group]:
        found = []
        for number in classes:
            chosen = [
                line
                for line in lines
                if account_class(line.number) == number and not is_disposition(line.number)
            ]
            if chosen:
                label = f"Sum klasse {number} {ACCOUNT_CLASSES[number]}"
                found.append(Group(chosen, subtotal(chosen, label)))
        return found

    balance_groups = groups(BALANCE_CLASSES)
    result_groups = groups(RESULT_CLASSES)
    balance = subtotal([g.total for g in balance_groups], "Sum balanse")
    result = subtotal(
        [g.total for g in result_groups], "Årsresultat", "(negativt tall = overskudd)"
    )
    sections = [
        Section("balanse", "Balanse", "klasse 1–2", balance_groups, [balance]),
        Section("resultat", "Resultat", "klasse 3–8", result_groups, [result]),
    ]
    dispositions = [line for line in lines if is_disposition(line.number)]
    if dispositions:
        total = subtotal(dispositions, "Sum overføringer og disponeringer")
        sections.append(
            Section(
                "disponeringer",
                "Overføringer og disponeringer",
                "kontoer 88–89, årsoppgjøret",
                [Group(dispositions, total)],
                [],
            )
        )
    others = [
        line
        for line in lines
        if account_class(line.number) not in ACCOUNT_CLASSES and not is_disposition(line.number)
    ]
    if others:
        total = subtotal(others, "Sum andre kontoer")
        sections.append(
            Section("andre", "Andre kontoer", "utenfor klasse 1–8", [Group(others, total)], [])
        )
    return Structured(
        period=report.period,
        previous=previous.period if previous else None,
        sections=sections,
        result=result,
        total=subtotal(lines, "Sum"),
    )


def result_in_words(amount: Decimal) -> str:
    """A result in the ledger's sign as the accountant says it: -1500 → 'overskudd på
    1 500,00', 200 → 'underskudd på 200,00'."""
    if amount < 0:
        return f"overskudd på {format_amount(-amount)}"
    if amount > 0:
        return f"underskudd på {format_amount(amount)}"
    return "0,00 (verken overskudd eller underskudd)"


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
