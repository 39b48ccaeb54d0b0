"""Taking in the ERP's change callbacks: verify, reject replays, note the changed months.

The receiver does no ERP calls and no syncing: it notes which months of which client
changed (a burst of events for one month is one row) and answers at once. The scheduler
then syncs each noted client once, incrementally, for just those months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import VoucherMonth, WebhookReceipt, WebhookSubscription
from services.connectors.base import CallbackRejected, ChangeEvent, Connector
from services.crypto import KeyVault
from services.db import insert_for
from services.sync import periods
from services.sync.pending import note_months
from services.sync.periods import Month


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # a retry or replay of a callback already taken in
    UNKNOWN = "unknown"  # no such subscription (removed): the ERP will give up on it
    REJECTED = "rejected"  # bad signature or malformed


@dataclass(frozen=True)
class Received:
    outcome: Outcome
    client_id: int | None = None
    event: str | None = None


async def receive(
    db: AsyncSession,
    vault: KeyVault,
    connector: Connector,
    hook_id: str,
    headers: dict[str, str],
    body: bytes,
    *,
    today: date,
    years: int,
) -> Received:
    row = (
        await db.exec(
            select(
                WebhookSubscription.client_id,
                WebhookSubscription.event,
                WebhookSubscription.erp_subscription_id,
                WebhookSubscription.secret_ciphertext,
            ).where(col(WebhookSubscription.hook_id) == hook_id)
        )
    ).first()
    if row is None:
        return Received(Outcome.UNKNOWN)
    client_id, subscribed_event, erp_subscription_id, secret_ciphertext = row
    try:
        event = connector.read_callback(vault.decrypt(secret_ciphertext), headers, body)
    except CallbackRejected:
        return Received(Outcome.REJECTED, client_id)
    if event.event != subscribed_event or (
        erp_subscription_id is not None and event.subscription_id != erp_subscription_id
    ):
        return Received(Outcome.REJECTED, client_id)
    callback_id = connector.callback_id(headers)
    if callback_id is None or not await _first_time(db, callback_id):
        await db.rollback()
        return Received(Outcome.DUPLICATE, client_id, event.event)
    window = periods.window(today, years)
    months = await _changed_months(db, client_id, event, today, window)
    await note_months(db, client_id, [m for m in months if m in window])
    await db.commit()
    return Received(Outcome.ACCEPTED, client_id, event.event)


async def _first_time(db: AsyncSession, callback_id: str) -> bool:
    result = await db.exec(
        insert_for(db, WebhookReceipt)
        .values(idempotency_key=callback_id[:100])
        .on_conflict_do_nothing()
    )
    return result.rowcount == 1


async def _changed_months(
    db: AsyncSession, client_id: int, event: ChangeEvent, today: date, window: list[Month]
) -> set[Month]:
    if not event.event.startswith("voucher."):
        # An account's name, type or flags: the sync fetches the chart of accounts every
        # time; the current month stands for "sync this client".
        return {Month(today.year, today.month)}
    seen = await db.get(VoucherMonth, (client_id, event.object_id))
    months = {Month(seen.year, seen.month)} if seen is not None else set()
    if event.day is not None:
        month = Month(event.day.year, event.day.month)
        months.add(month)
        # An upsert: callbacks for one voucher may arrive at once (create racing update).
        statement = insert_for(db, VoucherMonth).values(
            client_id=client_id, voucher_id=event.object_id, year=month.year, month=month.month
        )
        await db.exec(
            statement.on_conflict_do_update(
                index_elements=["client_id", "voucher_id"],
                set_={"year": statement.excluded.year, "month": statement.excluded.month},
            )
        )
    elif seen is not None:
        await db.delete(seen)
    if not months:
        # A voucher deleted (or changed without a date) that we never saw: any month of the
        # window may have changed. Conditional fetches make the unchanged ones cheap.
        months = set(window)
    return months
