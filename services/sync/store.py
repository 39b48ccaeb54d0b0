"""Writing synced data. Every write is idempotent: storing the same data twice changes
nothing, and each month is replaced whole inside the caller's transaction.

Real changes (compared with what is stored) are recorded in the change log in the same
transaction (services/publishing.py), so the API's change feed and the outbound
notifications never miss data that was committed, nor announce data that was not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import Integer, bindparam, insert, literal, tuple_, update
from sqlmodel import delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Account, ChangeKind, MonthMovement, YearOpening
from models.base import utcnow
from services.connectors.base import RemoteAccount
from services.publishing import Change, record_changes
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
    "grouping_category",
)
# Statements on the tables, not the models: the ORM's bulk and synchronize-session
# machinery costs more than these plain writes, and no session here holds these objects.
# Built once, with parameters: every sync runs them, and building a statement costs more
# of our CPU than running it (bench/README.md).
ACCOUNTS = Account.__table__  # type: ignore[attr-defined]
MOVEMENTS = MonthMovement.__table__  # type: ignore[attr-defined]
OPENINGS = YearOpening.__table__  # type: ignore[attr-defined]
_MOMENT = ACCOUNTS.c.updated_at.type
_CLIENT = bindparam("client_id")
_MONTHS = tuple_(MOVEMENTS.c.year, MOVEMENTS.c.month).in_(bindparam("months", expanding=True))
_YEARS = OPENINGS.c.year.in_(bindparam("years", expanding=True))

STORED_ACCOUNTS = select(
    ACCOUNTS.c.id,
    ACCOUNTS.c.erp_id,
    ACCOUNTS.c.removed_at,
    *(ACCOUNTS.c[n] for n in ACCOUNT_FIELDS),
).where(ACCOUNTS.c.client_id == _CLIENT)
ADD_ACCOUNTS = insert(ACCOUNTS).values(updated_at=bindparam("now", type_=_MOMENT))
CHANGE_ACCOUNTS = (
    update(ACCOUNTS)
    .where(ACCOUNTS.c.id == bindparam("account_id"))
    .values(removed_at=None, updated_at=bindparam("now", type_=_MOMENT))
)
_GONE = ACCOUNTS.c.id.in_(bindparam("gone", expanding=True))
DELETE_ACCOUNTS = delete(ACCOUNTS).where(_GONE)
FLAG_ACCOUNTS_REMOVED = (
    update(ACCOUNTS)
    .where(_GONE)
    .values(removed_at=bindparam("now", type_=_MOMENT), updated_at=bindparam("now", type_=_MOMENT))
)
# What is stored for the months and opening years about to be written, in one read: the
# openings come as month 0.
STORED_BALANCES = (
    select(MOVEMENTS.c.year, MOVEMENTS.c.month, MOVEMENTS.c.account_number, MOVEMENTS.c.amount)
    .where(MOVEMENTS.c.client_id == _CLIENT, _MONTHS)
    .union_all(
        select(
            OPENINGS.c.year, literal(0, Integer), OPENINGS.c.account_number, OPENINGS.c.amount
        ).where(OPENINGS.c.client_id == _CLIENT, _YEARS)
    )
)
DELETE_MOVEMENTS = delete(MOVEMENTS).where(MOVEMENTS.c.client_id == _CLIENT, _MONTHS)
DELETE_OPENINGS = delete(OPENINGS).where(OPENINGS.c.client_id == _CLIENT, _YEARS)
ADD_MOVEMENTS = insert(MOVEMENTS)
ADD_OPENINGS = insert(OPENINGS)

Amounts = dict[int, Decimal]  # account number -> amount


@dataclass(frozen=True)
class Batch:
    """What one transaction of a sync stores, as fetched: the chart of accounts (with the
    first batch), the months whose balance sheet changed, and opening balances by year (a
    January's, and later years' when an earlier year changed)."""

    accounts: list[RemoteAccount] | None = None
    months: dict[Month, Amounts] = field(default_factory=dict)
    openings: dict[int, Amounts] = field(default_factory=dict)


async def store(
    db: AsyncSession,
    client_id: int,
    batch: Batch,
    *,
    mirror_deletions: bool = False,
    whole_chart: bool = True,
) -> None:
    """Store a batch in the caller's transaction and log what changed, in one insert.
    With `whole_chart` off, only the batch's accounts that are not stored yet are added: an
    older file's chart says nothing about the accounts, names and removals since."""
    changes: list[Change] = []
    if batch.accounts is not None and await _store_accounts(
        db, client_id, batch.accounts, mirror_deletions=mirror_deletions, whole=whole_chart
    ):
        changes.append((ChangeKind.ACCOUNTS, None, None))
    changes += await _store_balances(db, client_id, batch.months, batch.openings)
    await record_changes(db, client_id, changes)


async def _store_accounts(
    db: AsyncSession,
    client_id: int,
    remote: list[RemoteAccount],
    *,
    mirror_deletions: bool,
    whole: bool = True,
) -> int:
    """Bring the chart of accounts in line with a complete fetch. Accounts gone from the
    ERP are deleted (SLETT KONTOER on) or kept and flagged removed. Returns changes made.
    Plain rows, not ORM objects: a first sync adds a whole chart at once."""
    stored = await db.exec(STORED_ACCOUNTS, params={"client_id": client_id})  # type: ignore[call-overload]
    existing = {row.erp_id: row for row in stored.all()}
    added: list[dict[str, object]] = []
    changed: list[dict[str, object]] = []
    for item in remote:
        values = {name: getattr(item, name) for name in ACCOUNT_FIELDS}
        row = existing.pop(item.erp_id, None)
        if row is None:
            added.append({"client_id": client_id, "erp_id": item.erp_id, **values})
        elif whole and (
            row.removed_at is not None or any(getattr(row, k) != v for k, v in values.items())
        ):
            changed.append({"account_id": row.id, **values})
    gone = [
        row.id
        for row in existing.values()
        if whole and (mirror_deletions or row.removed_at is None)
    ]
    now = utcnow()
    if added:
        await db.exec(ADD_ACCOUNTS, params=[{**row, "now": now} for row in added])  # type: ignore[call-overload]
    if changed:
        await db.exec(CHANGE_ACCOUNTS, params=[{**row, "now": now} for row in changed])  # type: ignore[call-overload]
    if gone:
        removal = DELETE_ACCOUNTS if mirror_deletions else FLAG_ACCOUNTS_REMOVED
        await db.exec(removal, params={"gone": gone, "now": now})  # type: ignore[call-overload]
    return len(added) + len(changed) + len(gone)


async def _store_balances(
    db: AsyncSession,
    client_id: int,
    months: Mapping[Month, Amounts],
    openings: Mapping[int, Amounts],
) -> list[Change]:
    """Replace the months' movements and the years' openings that differ from what is
    stored; unchanged ones are not rewritten. A handful of statements however many months:
    one read of what is stored, then a delete and an insert of what moved, per table."""
    if not months and not openings:  # every month unchanged (304): nothing to compare
        return []
    stored_months, stored_openings = await _stored(db, client_id, months, openings)
    moved = [m for m, amounts in months.items() if stored_months.get(m, {}) != _nonzero(amounts)]
    opened = [
        y for y, amounts in openings.items() if stored_openings.get(y, {}) != _nonzero(amounts)
    ]
    # One delete of what had rows and one executemany of the new rows, per table: not an
    # ORM object per row, as a full sync writes thousands of rows.
    if replaced := [(m.year, m.month) for m in moved if m in stored_months]:
        await db.exec(DELETE_MOVEMENTS, params={"client_id": client_id, "months": replaced})  # type: ignore[call-overload]
    if replaced_years := [y for y in opened if y in stored_openings]:
        await db.exec(DELETE_OPENINGS, params={"client_id": client_id, "years": replaced_years})  # type: ignore[call-overload]
    movements = [
        {"client_id": client_id, "year": m.year, "month": m.month, **row}
        for m in moved
        for row in _rows(months[m])
    ]
    if movements:
        await db.exec(ADD_MOVEMENTS, params=movements)  # type: ignore[call-overload]
    year_openings = [
        {"client_id": client_id, "year": y, **row} for y in opened for row in _rows(openings[y])
    ]
    if year_openings:
        await db.exec(ADD_OPENINGS, params=year_openings)  # type: ignore[call-overload]
    # A January whose opening changed stands for its whole year (every month's balance in
    # it moved), logged where the month would be; other years' openings come last.
    opened_years, moved_months = set(opened), set(moved)
    changes: list[Change] = []
    for m in months:
        if m.month == 1 and m.year in opened_years:
            changes.append((ChangeKind.BALANCES, m.year, None))
        elif m in moved_months:
            changes.append((ChangeKind.BALANCES, m.year, m.month))
    later = [y for y in opened if Month(y, 1) not in months]
    return changes + [(ChangeKind.BALANCES, year, None) for year in later]


async def _stored(
    db: AsyncSession,
    client_id: int,
    months: Mapping[Month, Amounts],
    openings: Mapping[int, Amounts],
) -> tuple[dict[Month, Amounts], dict[int, Amounts]]:
    params = {
        "client_id": client_id,
        "months": [(m.year, m.month) for m in months],
        "years": list(openings),
    }
    rows = await db.exec(STORED_BALANCES, params=params)  # type: ignore[call-overload]
    stored_months: dict[Month, Amounts] = {}
    stored_openings: dict[int, Amounts] = {}
    for year, month, number, amount in rows.all():
        if month == 0:
            stored_openings.setdefault(year, {})[number] = amount
        else:
            stored_months.setdefault(Month(year, month), {})[number] = amount
    return stored_months, stored_openings


def _nonzero(amounts: Amounts) -> Amounts:
    return {number: amount for number, amount in amounts.items() if amount != 0}


def _rows(amounts: Amounts) -> list[dict[str, object]]:
    # Zero rows carry no information: leaving them out keeps the tables small.
    return [
        {"account_number": number, "amount": amount}
        for number, amount in sorted(amounts.items())
        if amount != 0
    ]
