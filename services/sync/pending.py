"""Noting months that must be re-fetched. A burst of notes for one month is one row."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from sqlalchemy import Insert, Table, bindparam, tuple_
from sqlmodel import delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import PendingPeriod
from models.base import utcnow
from services.db import upsert
from services.sync.periods import Month

# Statements on the table, not the model: executemany, and no session holds these rows.
# Built once: they run for every sync and every batch of callbacks.
NOTES = PendingPeriod.__table__  # type: ignore[attr-defined]
OF_CLIENT = select(NOTES.c.year, NOTES.c.month, NOTES.c.source).where(
    NOTES.c.client_id == bindparam("client_id")
)
CLEAR = delete(NOTES).where(
    NOTES.c.client_id == bindparam("client_id"),
    tuple_(NOTES.c.year, NOTES.c.month).in_(bindparam("months", expanding=True)),
    NOTES.c.noted_at <= bindparam("fetched_at", type_=NOTES.c.noted_at.type),
)


async def note_months(
    db: AsyncSession, client_id: int, months: Iterable[Month], *, source: str = "webhook"
) -> None:
    await note_changes(db, {client_id: months}, source=source)


async def clear(
    db: AsyncSession, client_id: int, months: Iterable[Month], *, fetched_at: datetime
) -> None:
    """Drop the notes these months' fetch answered: only those older than the fetch, so a
    change noted while the months were being fetched is still synced afterwards."""
    params = {
        "client_id": client_id,
        "months": [(m.year, m.month) for m in months],
        "fetched_at": fetched_at,
    }
    await db.exec(CLEAR, params=params)  # type: ignore[call-overload]


async def note_changes(
    db: AsyncSession, months: Mapping[int, Iterable[Month]], *, source: str = "webhook"
) -> None:
    """Note the months of several clients at once (one statement)."""
    now = utcnow()
    rows = [
        {
            "client_id": client_id,
            "year": m.year,
            "month": m.month,
            "noted_at": now,
            "source": source,
        }
        for client_id, client_months in months.items()
        for m in client_months
    ]
    if rows:
        await db.exec(upsert(db, _note), params=rows)  # type: ignore[call-overload]


def _note(insert: Callable[[Table], Insert]) -> Insert:
    statement = insert(NOTES)
    # A newer note must win: the engine drops only notes older than its fetch of the month,
    # so a change noted while that month was being fetched is still synced afterwards.
    return statement.on_conflict_do_update(  # type: ignore[attr-defined, no-any-return]
        index_elements=["client_id", "year", "month"],
        set_={"noted_at": statement.excluded.noted_at, "source": statement.excluded.source},
    )
