"""Writing synced data. Every write is idempotent: storing the same data twice changes
nothing, and each month is replaced whole inside the caller's transaction.

Real changes (compared with what is stored) are recorded in the change log in the same
transaction (services/publishing.py), so the API's change feed and the outbound
notifications never miss data that was committed, nor announce data that was not."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import insert
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Account, ChangeKind, MonthMovement, YearOpening
from models.base import utcnow
from services.connectors.base import RemoteAccount
from services.publishing import record_change
from services.sync.periods import Month


async def store_accounts(
    db: AsyncSession, client_id: int, remote: list[RemoteAccount], *, mirror_deletions: bool
) -> int:
    """Bring the chart of accounts in line with a complete fetch. Accounts gone from the
    ERP are deleted (SLETT KONTOER on) or kept and flagged removed. Returns changes made."""
    existing = {
        a.erp_id: a
        for a in (await db.exec(select(Account).where(col(Account.client_id) == client_id))).all()
    }
    changes = 0
    now = utcnow()
    for item in remote:
        account = existing.pop(item.erp_id, None)
        values = {
            "number": item.number,
            "name": item.name,
            "type": item.type,
            "is_inactive": item.is_inactive,
            "is_bank_account": item.is_bank_account,
            "vat_code": item.vat_code,
            "saft_code": item.saft_code,
            "grouping_code": item.grouping_code,
            "removed_at": None,
        }
        if account is None:
            db.add(Account(client_id=client_id, erp_id=item.erp_id, updated_at=now, **values))
            changes += 1
        elif any(getattr(account, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(account, k, v)
            account.updated_at = now
            changes += 1
    for gone in existing.values():
        if mirror_deletions:
            await db.delete(gone)
            changes += 1
        elif gone.removed_at is None:
            gone.removed_at = now
            changes += 1
    if changes:
        await record_change(db, client_id, ChangeKind.ACCOUNTS)
    return changes


async def store_month(
    db: AsyncSession,
    client_id: int,
    month: Month,
    movements: dict[int, Decimal],
    opening: dict[int, Decimal] | None = None,
) -> bool:
    """Replace one month's movements (and, for January, the year's openings). Returns
    whether anything changed; unchanged data is not rewritten."""
    stored = await _amounts(
        db,
        select(MonthMovement.account_number, MonthMovement.amount).where(
            col(MonthMovement.client_id) == client_id,
            col(MonthMovement.year) == month.year,
            col(MonthMovement.month) == month.month,
        ),
    )
    moved = stored != _nonzero(movements)
    if moved:
        await db.exec(
            delete(MonthMovement).where(
                col(MonthMovement.client_id) == client_id,
                col(MonthMovement.year) == month.year,
                col(MonthMovement.month) == month.month,
            )
        )
        await _insert(db, MonthMovement, client_id, movements, year=month.year, month=month.month)
    opened = False
    if opening is not None:
        opened = await store_opening(db, client_id, month.year, opening, record=False)
    if opened:  # every month of the year has a new balance in: the whole year changed
        await record_change(db, client_id, ChangeKind.BALANCES, year=month.year)
    elif moved:
        await record_change(db, client_id, ChangeKind.BALANCES, year=month.year, month=month.month)
    return moved or opened


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
        select(YearOpening.account_number, YearOpening.amount).where(
            col(YearOpening.client_id) == client_id, col(YearOpening.year) == year
        ),
    )
    if stored == _nonzero(opening):
        return False
    await db.exec(
        delete(YearOpening).where(
            col(YearOpening.client_id) == client_id, col(YearOpening.year) == year
        )
    )
    await _insert(db, YearOpening, client_id, opening, year=year)
    if record:
        await record_change(db, client_id, ChangeKind.BALANCES, year=year)
    return True


def _nonzero(amounts: dict[int, Decimal]) -> dict[int, Decimal]:
    return {number: amount for number, amount in amounts.items() if amount != 0}


async def _amounts(db: AsyncSession, query: object) -> dict[int, Decimal]:
    rows = (await db.exec(query)).all()  # type: ignore[call-overload]
    return {number: amount for number, amount in rows}


async def _insert(
    db: AsyncSession,
    model: type[MonthMovement] | type[YearOpening],
    client_id: int,
    amounts: dict[int, Decimal],
    **key: int,
) -> None:
    # One executemany, not an ORM object per row: a full sync writes thousands of rows.
    # Zero rows carry no information: leaving them out keeps the tables small.
    rows = [
        {"client_id": client_id, "account_number": number, "amount": amount, **key}
        for number, amount in sorted(amounts.items())
        if amount != 0
    ]
    if rows:
        await db.exec(insert(model), params=rows)
