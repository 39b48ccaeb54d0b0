"""Writing synced data. Every write is idempotent: storing the same data twice changes
nothing, and each month is replaced whole inside the caller's transaction.

Real changes (compared with what is stored) are recorded in the change log in the same
transaction (services/publishing.py), so the API's change feed and the outbound
notifications never miss data that was committed, nor announce data that was not."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ColumnElement, Table, bindparam, insert, tuple_, update
from sqlmodel import delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Account, ChangeKind, MonthMovement, YearOpening
from models.base import utcnow
from services.connectors.base import RemoteAccount
from services.publishing import record_balance_changes, record_change
from services.sync.periods import Month

# What the ERP tells about an account (RemoteAccount's attributes, Account's columns).
ACCOUNT_FIELDS = (
    "number",
    "name",
    "type",
    "is_inactive",
    "is_bank_account",
    "vat_code",
    "saft_code",
    "grouping_code",
)
# Statements on the tables, not the models: the ORM's bulk and synchronize-session
# machinery costs more than these plain writes, and no session here holds these objects.
ACCOUNTS = Account.__table__  # type: ignore[attr-defined]
MOVEMENTS = MonthMovement.__table__  # type: ignore[attr-defined]
OPENINGS = YearOpening.__table__  # type: ignore[attr-defined]


async def store_accounts(
    db: AsyncSession, client_id: int, remote: list[RemoteAccount], *, mirror_deletions: bool
) -> int:
    """Bring the chart of accounts in line with a complete fetch. Accounts gone from the
    ERP are deleted (SLETT KONTOER on) or kept and flagged removed. Returns changes made.
    Plain rows, not ORM objects: a first sync adds a whole chart at once."""
    c = ACCOUNTS.c
    stored = await db.exec(  # type: ignore[call-overload]
        select(c.id, c.erp_id, c.removed_at, *(c[name] for name in ACCOUNT_FIELDS)).where(
            c.client_id == client_id
        )
    )
    existing = {row.erp_id: row for row in stored.all()}
    now = utcnow()
    added: list[dict[str, object]] = []
    changed: list[dict[str, object]] = []
    for item in remote:
        values = {name: getattr(item, name) for name in ACCOUNT_FIELDS}
        row = existing.pop(item.erp_id, None)
        if row is None:
            added.append({"client_id": client_id, "erp_id": item.erp_id, **values})
        elif row.removed_at is not None or any(getattr(row, k) != v for k, v in values.items()):
            changed.append({"account_id": row.id, **values})
    gone = [row.id for row in existing.values() if mirror_deletions or row.removed_at is None]
    if added:
        await db.exec(insert(ACCOUNTS).values(updated_at=now), params=added)  # type: ignore[call-overload]
    if changed:
        await db.exec(  # type: ignore[call-overload]
            update(ACCOUNTS)
            .where(c.id == bindparam("account_id"))
            .values(removed_at=None, updated_at=now),
            params=changed,
        )
    if gone:
        await db.exec(  # type: ignore[call-overload]
            delete(ACCOUNTS).where(c.id.in_(gone))
            if mirror_deletions
            else update(ACCOUNTS).where(c.id.in_(gone)).values(removed_at=now, updated_at=now)
        )
    changes = len(added) + len(changed) + len(gone)
    if changes:
        await record_change(db, client_id, ChangeKind.ACCOUNTS)
    return changes


@dataclass(frozen=True)
class FetchedMonth:
    month: Month
    movements: dict[int, Decimal]
    opening: dict[int, Decimal] | None = None  # January: the year's opening balances


async def store_months(db: AsyncSession, client_id: int, fetched: list[FetchedMonth]) -> int:
    """Replace several months' movements (and, for January, the year's openings) in the
    caller's transaction; returns how many months changed. Unchanged months are not
    rewritten. A handful of statements however many months: one read of what is stored,
    one delete and one insert of the months that moved, one change-log insert."""
    if not fetched:  # every month unchanged (304): nothing to compare
        return 0
    stored = await _stored_movements(db, client_id, [f.month for f in fetched])
    moved = [f for f in fetched if stored.get(f.month, {}) != _nonzero(f.movements)]
    if replaced := [f.month for f in moved if f.month in stored]:
        await db.exec(
            delete(MOVEMENTS).where(MOVEMENTS.c.client_id == client_id, _in_months(replaced))
        )
    if moved:
        await _insert(
            db,
            MOVEMENTS,
            [
                {"client_id": client_id, "year": f.month.year, "month": f.month.month, **row}
                for f in moved
                for row in _rows(f.movements)
            ],
        )
    moved_months = {f.month for f in moved}
    changes: list[tuple[int, int | None]] = []
    for f in fetched:
        if f.opening is not None and await store_opening(
            db, client_id, f.month.year, f.opening, record=False
        ):
            changes.append((f.month.year, None))  # every month's balance in: the whole year
        elif f.month in moved_months:
            changes.append((f.month.year, f.month.month))
    await record_balance_changes(db, client_id, changes)
    return len(changes)


async def store_opening(
    db: AsyncSession,
    client_id: int,
    year: int,
    opening: dict[int, Decimal],
    *,
    record: bool = True,
) -> bool:
    """Replace a year's opening balances; returns whether they changed."""
    stored = await _amounts(
        db,
        select(OPENINGS.c.account_number, OPENINGS.c.amount).where(
            OPENINGS.c.client_id == client_id, OPENINGS.c.year == year
        ),
    )
    if stored == _nonzero(opening):
        return False
    if stored:
        await db.exec(
            delete(OPENINGS).where(OPENINGS.c.client_id == client_id, OPENINGS.c.year == year)
        )
    await _insert(
        db, OPENINGS, [{"client_id": client_id, "year": year, **row} for row in _rows(opening)]
    )
    if record:
        await record_change(db, client_id, ChangeKind.BALANCES, year=year)
    return True


def _nonzero(amounts: dict[int, Decimal]) -> dict[int, Decimal]:
    return {number: amount for number, amount in amounts.items() if amount != 0}


async def _amounts(db: AsyncSession, query: object) -> dict[int, Decimal]:
    rows = (await db.exec(query)).all()  # type: ignore[call-overload]
    return {number: amount for number, amount in rows}


async def _stored_movements(
    db: AsyncSession, client_id: int, months: list[Month]
) -> dict[Month, dict[int, Decimal]]:
    rows = await db.exec(
        select(
            MOVEMENTS.c.year,
            MOVEMENTS.c.month,
            MOVEMENTS.c.account_number,
            MOVEMENTS.c.amount,
        ).where(MOVEMENTS.c.client_id == client_id, _in_months(months))
    )
    stored: dict[Month, dict[int, Decimal]] = {}
    for year, month, number, amount in rows.all():
        stored.setdefault(Month(year, month), {})[number] = amount
    return stored


def _in_months(months: Iterable[Month]) -> ColumnElement[bool]:
    columns = tuple_(MOVEMENTS.c.year, MOVEMENTS.c.month)
    return columns.in_([(m.year, m.month) for m in months])


def _rows(amounts: dict[int, Decimal]) -> list[dict[str, object]]:
    # Zero rows carry no information: leaving them out keeps the tables small.
    return [
        {"account_number": number, "amount": amount}
        for number, amount in sorted(amounts.items())
        if amount != 0
    ]


async def _insert(db: AsyncSession, table: Table, rows: list[dict[str, object]]) -> None:
    # One executemany, not an ORM object per row: a full sync writes thousands of rows.
    if rows:
        await db.exec(insert(table), params=rows)  # type: ignore[call-overload]
