"""Claiming clients to sync through leases in the database.

A claim is a conditional UPDATE ("take it if it is due and nobody holds a live lease"),
which both SQLite and PostgreSQL run atomically, so two processes never sync one client at
once; the scheduler claims as many clients as it has room for in one such statement. A
process that dies leaves its lease to expire; the client is then claimed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, bindparam, exists, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration, PendingPeriod, WebhookSubscription
from models.base import utcnow

CLIENTS = Client.__table__  # type: ignore[attr-defined]
# The statements below run for every sync: built once, with the moment as a parameter
# (building a statement costs more of our CPU than running it).
NOW = bindparam("now", type_=CLIENTS.c.lease_expires_at.type)


def _due(now: ColumnElement, *, of_systems: bool = False) -> list[ColumnElement[bool]]:
    """Free, with a working key, and either active and due (by schedule or with work noted)
    or inactive but still subscribed to changes at the ERP (to unsubscribe). `of_systems`:
    only integrations of the systems this process has connectors for (the `systems`
    parameter); another system's clients would be claimed, skipped and due again at once."""
    pending = exists().where(col(PendingPeriod.client_id) == CLIENTS.c.id)
    subscribed = exists().where(col(WebhookSubscription.client_id) == CLIENTS.c.id)
    working_keys = select(Integration.id).where(col(Integration.key_status) == "ok")
    if of_systems:
        systems = bindparam("systems", expanding=True)
        working_keys = working_keys.where(col(Integration.system).in_(systems))
    c = CLIENTS.c
    to_sync = and_(
        c.active,
        c.access_lost.is_(False),
        or_(c.sync_due_at.is_(None), c.sync_due_at <= now, c.full_sync, pending),
    )
    to_unsubscribe = and_(or_(~c.active, c.access_lost), subscribed)
    free = or_(c.lease_expires_at.is_(None), c.lease_expires_at < now)
    return [c.integration_id.in_(working_keys), or_(to_sync, to_unsubscribe), free]


# The most overdue due clients, claimed in one statement. The outer conditions are checked
# again on each row as it is updated, so a client another process claimed since the inner
# SELECT read it is skipped, not taken twice.
CLAIM_DUE = (
    update(CLIENTS)
    .where(
        CLIENTS.c.id.in_(
            select(CLIENTS.c.id)
            .where(*_due(NOW, of_systems=True))
            .order_by(CLIENTS.c.sync_due_at.is_(None).desc(), CLIENTS.c.sync_due_at)
            .limit(bindparam("limit"))
        ),
        *_due(NOW, of_systems=True),
    )
    .values(lease_owner=bindparam("owner"), lease_expires_at=bindparam("expires_at"))
    .returning(CLIENTS.c.id, CLIENTS.c.integration_id)
)
# Take the client if it is still due and free: the list of due clients may be stale by
# then (another process may have synced it meanwhile), so the claim checks both again.
CLAIM = (
    update(CLIENTS)
    .where(CLIENTS.c.id == bindparam("client_id"), *_due(NOW))
    .values(lease_owner=bindparam("owner"), lease_expires_at=bindparam("expires_at"))
)
EXTEND = (
    update(CLIENTS)
    .where(CLIENTS.c.id == bindparam("client_id"), CLIENTS.c.lease_owner == bindparam("owner"))
    .values(lease_expires_at=bindparam("expires_at"))
)
RELEASE = (
    update(CLIENTS)
    .where(CLIENTS.c.id == bindparam("client_id"), CLIENTS.c.lease_owner == bindparam("owner"))
    .values(lease_owner=None, lease_expires_at=None)
)


async def claim_due(
    db: AsyncSession, owner: str, lease: timedelta, limit: int, systems: Sequence[str]
) -> list[tuple[int, int]]:
    """Take up to `limit` due clients of `systems`, most overdue first: (client id,
    integration id)."""
    now = utcnow()
    params = {
        "now": now,
        "limit": limit,
        "owner": owner,
        "expires_at": now + lease,
        "systems": list(systems),
    }
    rows = (await db.exec(CLAIM_DUE, params=params)).all()  # type: ignore[call-overload]
    await db.commit()
    return [(client_id, integration_id) for client_id, integration_id in rows]


async def claim(db: AsyncSession, client_id: int, owner: str, lease: timedelta) -> bool:
    """Take this client if it is due and free (tools and tests; the scheduler claims in
    bulk with `claim_due`)."""
    now = utcnow()
    params = {"client_id": client_id, "now": now, "owner": owner, "expires_at": now + lease}
    result = await db.exec(CLAIM, params=params)  # type: ignore[call-overload]
    await db.commit()
    return result.rowcount == 1


async def extend(db: AsyncSession, client_id: int, owner: str, lease: timedelta) -> None:
    params = {"client_id": client_id, "owner": owner, "expires_at": utcnow() + lease}
    await db.exec(EXTEND, params=params)  # type: ignore[call-overload]


async def release(db: AsyncSession, client_id: int, owner: str) -> None:
    await db.exec(RELEASE, params={"client_id": client_id, "owner": owner})  # type: ignore[call-overload]
    await db.commit()


def update_lease_expiry(client_id: int, expires_at: datetime):
    """For tests and tools: set when a lease runs out."""
    return update(Client).where(col(Client.id) == client_id).values(lease_expires_at=expires_at)
