"""Published data: what the office's downstream products may read, and the change log.

Only clients with SEND DATA on are published. Changes of every client are recorded (in the
transaction that stores the data), but those of clients with SEND DATA off are never shown:
the read side filters on the client's switch as it is when read. The balances they read
are the client page's saldobalanse (services.balances).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Insert, Integer, bindparam, func, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Account, ChangeKind, Client, DataChange, Integration
from models.base import utcnow
from services.sync.status import SHOW_AFTER_FAILURES, SyncStatus

# Rows younger than this are not handed out yet: on PostgreSQL a transaction that took a
# lower id may commit after one with a higher id; waiting a moment keeps a reader's cursor
# from skipping it. Sync transactions are short (one month each).
SETTLE = timedelta(seconds=2)


# -- recording ---------------------------------------------------------------------------


# A change of one client's data: what changed, and in which period (year, month); month
# None: the whole year; both None: not tied to a period.
Change = tuple[ChangeKind, int | None, int | None]


async def record_change(
    db: AsyncSession,
    client_id: int,
    kind: ChangeKind,
    *,
    year: int | None = None,
    month: int | None = None,
) -> None:
    """Add a change row to the caller's transaction (the caller commits)."""
    await record_changes(db, client_id, [(kind, year, month)])


async def record_changes(db: AsyncSession, client_id: int, changes: list[Change]) -> None:
    """Several changes of one client, in this order, in one insert (the caller commits)."""
    if changes:
        await _write(db, [(client_id, kind, year, month) for kind, year, month in changes])


async def record_switch(db: AsyncSession, client_ids: list[int], switch: str, on: bool) -> None:
    """A client switch changed: AKTIV on/off, or SEND DATA on (the client is published)."""
    kind = {
        ("active", True): ChangeKind.CLIENT_ACTIVATED,
        ("active", False): ChangeKind.CLIENT_DEACTIVATED,
        ("send_data", True): ChangeKind.CLIENT_PUBLISHED,
    }.get((switch, on))
    if kind is not None and client_ids:
        await _write(db, [(cid, kind, None, None) for cid in sorted(client_ids)])


def _change_insert() -> Insert:
    """INSERT ... SELECT: the client's office comes from the database in the same statement,
    and a client that is gone records nothing. Built once; executed with a row of
    parameters per change (one executemany for many)."""
    columns = DataChange.__table__.c  # type: ignore[attr-defined]
    source = (
        select(
            col(Integration.office_id),
            col(Client.id),
            bindparam("change_kind", type_=columns.kind.type),
            bindparam("change_year", type_=Integer),
            bindparam("change_month", type_=Integer),
            bindparam("change_at", type_=columns.changed_at.type),
        )
        .join(Integration, col(Integration.id) == col(Client.integration_id))
        .where(col(Client.id) == bindparam("change_client"))
    )
    # On the table, not the model: an ORM insert with many parameter rows is a bulk insert,
    # which takes no SELECT.
    return insert(DataChange.__table__).from_select(  # type: ignore[arg-type]
        ["office_id", "client_id", "kind", "year", "month", "changed_at"], source
    )


CHANGE_INSERT = _change_insert()


async def _write(
    db: AsyncSession, changes: list[tuple[int, ChangeKind, int | None, int | None]]
) -> None:
    now = utcnow()
    rows = [
        {
            "change_client": client_id,
            "change_kind": kind.value,
            "change_year": year,
            "change_month": month,
            "change_at": now,
        }
        for client_id, kind, year, month in changes
    ]
    await db.exec(CHANGE_INSERT, params=rows)  # type: ignore[call-overload]


async def record_sync_failed(db: AsyncSession, client_id: int) -> None:
    """The sync engine calls this once a client's syncs have failed persistently."""
    await record_change(db, client_id, ChangeKind.SYNC_FAILED)


# -- reading -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    status: str  # ok, syncing, never, inactive, error, no_access, key_error
    message: str | None
    failures: int


def health(client: Client, integration: Integration) -> Health:
    failures = client.sync_failures
    if not client.active:
        return Health("inactive", None, failures)
    if integration.key_status == "invalid" or client.sync_status == SyncStatus.KEY_ERROR:
        return Health("key_error", client.sync_error, failures)
    if client.sync_status == SyncStatus.NO_ACCESS:
        return Health("no_access", client.sync_error, failures)
    if client.sync_status == SyncStatus.ERROR:
        if failures >= SHOW_AFTER_FAILURES or client.synced_at is None:
            return Health("error", client.sync_error, failures)
        return Health("ok", None, failures)  # passing trouble, retried quietly
    if client.synced_at is None:
        if client.sync_status == SyncStatus.SYNCING:
            return Health("syncing", None, failures)
        return Health("never", None, failures)
    return Health("ok", None, failures)


def _published(office_id: int):  # type: ignore[no-untyped-def]
    return (
        col(Integration.office_id) == office_id,
        col(Client.send_data).is_(True),
    )


async def list_clients(
    db: AsyncSession, office_id: int, *, after_id: int, limit: int
) -> list[tuple[Client, Integration]]:
    rows = await db.exec(
        select(Client, Integration)
        .join(Integration, col(Integration.id) == col(Client.integration_id))
        .where(*_published(office_id), col(Client.id) > after_id)
        .order_by(col(Client.id))
        .limit(limit)
    )
    return [(c, i) for c, i in rows.all()]


async def get_client(
    db: AsyncSession, office_id: int, client_id: int
) -> tuple[Client, Integration] | None:
    """The client if this office may see it through the API; None otherwise (404)."""
    row = (
        await db.exec(
            select(Client, Integration)
            .join(Integration, col(Integration.id) == col(Client.integration_id))
            .where(*_published(office_id), col(Client.id) == client_id)
        )
    ).first()
    return (row[0], row[1]) if row else None


async def list_accounts(
    db: AsyncSession,
    client_id: int,
    *,
    after: tuple[int, int] | None,
    limit: int,
    include_removed: bool,
) -> list[Account]:
    """Ordered by account number (then id): a stable keyset for cursors."""
    where = [col(Account.client_id) == client_id]
    if not include_removed:
        where.append(col(Account.removed_at).is_(None))
    if after is not None:
        number, account_id = after
        where.append(
            (col(Account.number) > number)
            | ((col(Account.number) == number) & (col(Account.id) > account_id))
        )
    rows = await db.exec(
        select(Account).where(*where).order_by(col(Account.number), col(Account.id)).limit(limit)
    )
    return list(rows.all())


async def list_changes(
    db: AsyncSession, office_id: int, *, after_id: int, limit: int, now: datetime | None = None
) -> list[DataChange]:
    settled = (now or utcnow()) - SETTLE
    rows = await db.exec(
        select(DataChange)
        .join(Client, col(Client.id) == col(DataChange.client_id))
        .join(Integration, col(Integration.id) == col(Client.integration_id))
        .where(
            *_published(office_id),
            col(DataChange.office_id) == office_id,
            col(DataChange.id) > after_id,
            col(DataChange.changed_at) <= settled,
        )
        .order_by(col(DataChange.id))
        .limit(limit)
    )
    return list(rows.all())


async def latest_change_id(db: AsyncSession, office_id: int, now: datetime | None = None) -> int:
    """The newest settled change: where a reader that has just read everything starts."""
    settled = (now or utcnow()) - SETTLE
    latest = (
        await db.exec(
            select(func.max(DataChange.id)).where(
                col(DataChange.office_id) == office_id, col(DataChange.changed_at) <= settled
            )
        )
    ).one()
    return int(latest or 0)
