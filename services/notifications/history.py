"""The leveranselogg: an endpoint's newest deliveries, each with every attempt made."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, DeliveryStatus, NotificationAttempt, NotificationDelivery

STATUS_LABELS = {
    DeliveryStatus.PENDING: "Venter",
    DeliveryStatus.DELIVERED: "Levert",
    DeliveryStatus.FAILED: "Feilet",
}


@dataclass(frozen=True)
class LogEntry:
    delivery: NotificationDelivery
    attempts: list[NotificationAttempt]
    client_name: str | None = None  # the office knows its clients by name, not by id

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(DeliveryStatus(self.delivery.status), self.delivery.status)


async def delivery_log(db: AsyncSession, endpoint_id: int, limit: int = 50) -> list[LogEntry]:
    """The newest deliveries, each with its attempts (newest first)."""
    deliveries = list(
        (
            await db.exec(
                select(NotificationDelivery)
                .where(col(NotificationDelivery.endpoint_id) == endpoint_id)
                .order_by(col(NotificationDelivery.id).desc())
                .limit(limit)
            )
        ).all()
    )
    ids = [d.id for d in deliveries]
    attempts: dict[int, list[NotificationAttempt]] = {i: [] for i in ids if i is not None}
    if ids:
        for attempt in (
            await db.exec(
                select(NotificationAttempt)
                .where(col(NotificationAttempt.delivery_id).in_(ids))
                .order_by(col(NotificationAttempt.id).desc())
            )
        ).all():
            attempts[attempt.delivery_id].append(attempt)
    client_ids = {d.client_id for d in deliveries if d.client_id is not None}
    names: dict[int, str] = {}
    if client_ids:
        rows = await db.exec(select(Client.id, Client.name).where(col(Client.id).in_(client_ids)))
        names = {client_id: name for client_id, name in rows.all() if client_id is not None}
    return [
        LogEntry(d, attempts.get(d.id or 0, []), names.get(d.client_id or 0)) for d in deliveries
    ]


async def last_attempt(db: AsyncSession, delivery_id: int) -> NotificationAttempt | None:
    """A delivery's newest attempt (Send testvarsel shows its answer)."""
    return (
        await db.exec(
            select(NotificationAttempt)
            .where(col(NotificationAttempt.delivery_id) == delivery_id)
            .order_by(col(NotificationAttempt.id).desc())
            .limit(1)
        )
    ).first()
