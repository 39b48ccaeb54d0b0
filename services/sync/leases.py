"""Claiming clients to sync through leases in the database.

A claim is one conditional UPDATE per client ("take it if nobody holds a live lease"), which
both SQLite and PostgreSQL run atomically, so two processes never sync one client at once.
A process that dies leaves its lease to expire; the client is then claimed again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration, PendingPeriod, WebhookSubscription
from models.base import utcnow


def _free(now: datetime):
    return or_(col(Client.lease_expires_at).is_(None), col(Client.lease_expires_at) < now)


def _due(now: datetime) -> list:
    """Free, with a working key, and either active and due (by schedule or with work noted)
    or inactive but still subscribed to changes at the ERP (to unsubscribe)."""
    pending = exists().where(col(PendingPeriod.client_id) == col(Client.id))
    subscribed = exists().where(col(WebhookSubscription.client_id) == col(Client.id))
    working_keys = select(Integration.id).where(col(Integration.key_status) == "ok")
    to_sync = and_(
        col(Client.active),
        col(Client.access_lost).is_(False),
        or_(
            col(Client.sync_due_at).is_(None),
            col(Client.sync_due_at) <= now,
            col(Client.full_sync),
            pending,
        ),
    )
    to_unsubscribe = and_(or_(~col(Client.active), col(Client.access_lost)), subscribed)
    return [col(Client.integration_id).in_(working_keys), or_(to_sync, to_unsubscribe), _free(now)]


async def due_clients(db: AsyncSession, now: datetime, limit: int) -> list[tuple[int, int]]:
    """(client id, integration id) of active clients whose sync is due, most overdue first."""
    rows = await db.exec(
        select(Client.id, Client.integration_id)
        .where(*_due(now))
        .order_by(col(Client.sync_due_at).is_(None).desc(), col(Client.sync_due_at))
        .limit(limit)
    )
    return [(client_id, integration_id) for client_id, integration_id in rows.all()]


async def claim(db: AsyncSession, client_id: int, owner: str, lease: timedelta) -> bool:
    """Take the client if it is still due and free: the list of due clients may be stale by
    now (another process may have synced it meanwhile), so the claim checks both again."""
    now = utcnow()
    result = await db.exec(
        update(Client)
        .where(col(Client.id) == client_id, *_due(now))
        .values(lease_owner=owner, lease_expires_at=now + lease)
        .execution_options(synchronize_session=False)  # no session here holds the client
    )
    await db.commit()
    return result.rowcount == 1


async def extend(db: AsyncSession, client_id: int, owner: str, lease: timedelta) -> None:
    await db.exec(
        update(Client)
        .where(col(Client.id) == client_id, col(Client.lease_owner) == owner)
        .values(lease_expires_at=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )


async def release(db: AsyncSession, client_id: int, owner: str) -> None:
    await db.exec(
        update(Client)
        .where(col(Client.id) == client_id, col(Client.lease_owner) == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    await db.commit()


def update_lease_expiry(client_id: int, expires_at: datetime):
    """For tests and tools: set when a lease runs out."""
    return update(Client).where(col(Client.id) == client_id).values(lease_expires_at=expires_at)
