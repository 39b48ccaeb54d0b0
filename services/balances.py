"""Reading balances: the saldobalanse of a client for a month or a range of months.

Stored are each year's opening balances and each month's movements; balance in and out of
any period follow from them exactly (Decimal all the way)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import MonthMovement, YearOpening

ZERO = Decimal("0.00")


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
