"""Taking in the ERP's change callbacks: verify, reject replays, note the changed months.

The receiver does no ERP calls and no syncing: it notes which months of which client
changed (a burst of events for one month is one row) and answers once that is committed.
The scheduler then syncs each noted client once, incrementally, for just those months.

Callbacks come in bursts. Each request checks its signature itself, then hands the event
to the `CallbackInbox`, which writes whatever has arrived meanwhile in one transaction (a
group commit): per batch a handful of statements instead of a handful per callback, and
one writer at a time, which is what SQLite allows anyway. A callback only ever makes us
re-fetch from the ERP; no data in it is trusted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlalchemy import Insert, Table, bindparam, tuple_
from sqlmodel import delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, VoucherMonth, WebhookReceipt
from services.change_events.hook_cache import HookCache
from services.connectors.base import CallbackRejected, ChangeEvent
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import SessionFactory, upsert
from services.sync import periods
from services.sync.pending import note_changes
from services.sync.periods import Month

log = logging.getLogger(__name__)
MAX_BATCH = 500
GATHER_SECONDS = 0.002
# Statements on the tables, not the models: executemany, compiled once whatever the batch's
# size, and none of the ORM's bulk machinery (no session here holds these objects).
# Built once: building a statement costs more of our CPU than running it.
CLIENTS = Client.__table__  # type: ignore[attr-defined]
RECEIPTS = WebhookReceipt.__table__  # type: ignore[attr-defined]
VOUCHER_MONTHS = VoucherMonth.__table__  # type: ignore[attr-defined]
EXISTING_CLIENTS = select(CLIENTS.c.id).where(CLIENTS.c.id.in_(bindparam("ids", expanding=True)))
_VOUCHER = tuple_(VOUCHER_MONTHS.c.client_id, VOUCHER_MONTHS.c.voucher_id)
VOUCHERS_SEEN = select(
    VOUCHER_MONTHS.c.client_id, VOUCHER_MONTHS.c.voucher_id, VOUCHER_MONTHS.c.year,
    VOUCHER_MONTHS.c.month,
).where(_VOUCHER.in_(bindparam("vouchers", expanding=True)))  # fmt: skip
VOUCHERS_GONE = delete(VOUCHER_MONTHS).where(_VOUCHER.in_(bindparam("vouchers", expanding=True)))


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # a retry or replay of a callback already taken in
    UNKNOWN = "unknown"  # no such subscription (removed): the ERP will give up on it
    REJECTED = "rejected"  # bad signature or malformed


@dataclass(frozen=True)
class Received:
    outcome: Outcome
    event: str | None = None  # named only once the signature checked out


@dataclass(frozen=True)
class Verified:
    """A callback whose signature checked out, waiting to be written."""

    client_id: int
    callback_id: str
    event: ChangeEvent


class CallbackInbox:
    def __init__(
        self,
        session_factory: SessionFactory,
        vault: KeyVault,
        connectors: Connectors,
        *,
        years: int,
        today: Callable[[], date] = date.today,
    ) -> None:
        self._factory = session_factory
        self._connectors = connectors
        self._years = years
        self._today = today
        self._hooks = HookCache(session_factory, vault)
        self._waiting: list[tuple[Verified, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def receive(
        self, system: str, hook_id: str, headers: dict[str, str], body: bytes
    ) -> Received:
        """A callback to `/webhooks/{system}/{hook_id}`: known only under its own system."""
        hook = await self._hooks.get(hook_id)
        connector = self._connectors.get(system)
        if hook is None or hook.system != system or connector is None:
            return Received(Outcome.UNKNOWN)
        try:
            event = connector.read_callback(hook.secret, headers, body)
        except CallbackRejected as exc:  # its message names the check, never the secret
            log.warning("Callback for client %s rejected: %s", hook.client_id, exc)
            return Received(Outcome.REJECTED)
        callback_id = connector.callback_id(headers)
        wrong_subscription = hook.erp_subscription_id not in (None, event.subscription_id)
        if event.event != hook.event or wrong_subscription or not callback_id:
            return Received(Outcome.REJECTED)
        first_time = await self._write(Verified(hook.client_id, callback_id[:100], event))
        outcome = Outcome.ACCEPTED if first_time else Outcome.DUPLICATE
        return Received(outcome, event.event)

    async def _write(self, verified: Verified) -> bool:
        """Whether this callback is new; returns once it is committed."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((verified, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        return await done

    async def _write_all(self) -> None:
        while self._waiting:
            # A moment for the callbacks already on their way to join this batch: each
            # batch costs a handful of statements however many callbacks it holds.
            await asyncio.sleep(GATHER_SECONDS)
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            try:
                new = await self._write_batch([verified for verified, _ in batch])
            except Exception as exc:  # the ERP retries what we did not answer with 2xx
                if len(batch) == 1:
                    _settle(batch[0][1], error=exc)
                    continue
                # The batch was rolled back whole. One bad callback must not fail the others
                # it happened to arrive with: write each alone, so only it fails.
                log.warning(
                    "A batch of %d callbacks failed (%s); writing them one by one",
                    len(batch),
                    type(exc).__name__,
                )
                for verified, done in batch:
                    await self._write_alone(verified, done)
                continue
            for verified, done in batch:
                _settle(done, verified.callback_id in new)

    async def _write_alone(self, verified: Verified, done: asyncio.Future[bool]) -> None:
        try:
            new = await self._write_batch([verified])
        except Exception as exc:
            _settle(done, error=exc)
        else:
            _settle(done, verified.callback_id in new)

    async def _write_batch(self, batch: list[Verified]) -> set[str]:
        today = self._today()
        window = set(periods.window(today, self._years))
        async with self._factory() as db:
            keys = list(dict.fromkeys(v.callback_id for v in batch))
            # One statement, compiled once whatever the batch's size (executemany with
            # RETURNING): the keys that were not there yet.
            new = set(
                (
                    await db.exec(  # type: ignore[call-overload]
                        upsert(db, _receipt), params=[{"idempotency_key": key} for key in keys]
                    )
                )
                .scalars()
                .all()
            )
            # A hook cached just before its client was deleted: nothing left to sync.
            client_ids = {v.client_id for v in batch}
            found = await db.exec(EXISTING_CLIENTS, params={"ids": list(client_ids)})  # type: ignore[call-overload]
            existing = set(found.all())
            accepted, seen_keys = [], set()
            for verified in batch:
                if verified.client_id not in existing:
                    continue
                if verified.callback_id in new and verified.callback_id not in seen_keys:
                    seen_keys.add(verified.callback_id)
                    accepted.append(verified)
            months = await _changed_months(db, accepted, today, window)
            await note_changes(db, {client: changed & window for client, changed in months.items()})
            await db.commit()
        return new


async def _changed_months(
    db: AsyncSession, batch: list[Verified], today: date, window: set[Month]
) -> dict[int, set[Month]]:
    """Per client, the months the batch's callbacks changed. A voucher's callback names its
    date; the month it left (moved, deleted) comes from the voucher_month table."""
    months: dict[int, set[Month]] = {}
    vouchers = [v for v in batch if v.event.event.startswith("voucher.")]
    for verified in batch:
        if not verified.event.event.startswith("voucher."):
            # An account's name, type or flags: every sync fetches the chart of accounts;
            # the current month stands for "sync this client".
            months.setdefault(verified.client_id, set()).add(Month(today.year, today.month))
    if not vouchers:
        return months
    keys = {(v.client_id, v.event.object_id) for v in vouchers}
    rows = await db.exec(VOUCHERS_SEEN, params={"vouchers": list(keys)})  # type: ignore[call-overload]
    seen = {
        (client_id, voucher_id): Month(year, month)
        for client_id, voucher_id, year, month in rows.all()
    }
    now_in: dict[tuple[int, int], Month | None] = {}
    for verified in vouchers:  # in arrival order: the last word on a voucher wins
        key = (verified.client_id, verified.event.object_id)
        changed = months.setdefault(verified.client_id, set())
        if (before := now_in.get(key, seen.get(key))) is not None:
            changed.add(before)
        day = verified.event.day
        now_in[key] = Month(day.year, day.month) if day is not None else None
        if day is not None:
            changed.add(Month(day.year, day.month))
        elif before is None:
            # A voucher deleted (or changed without a date) that we never saw: any month
            # of the window may have changed. Conditional fetches make unchanged ones cheap.
            changed.update(window)
    gone = [key for key, month in now_in.items() if month is None and key in seen]
    if gone:
        await db.exec(VOUCHERS_GONE, params={"vouchers": gone})  # type: ignore[call-overload]
    placed = [
        {"client_id": c, "voucher_id": v, "year": m.year, "month": m.month}
        for (c, v), m in now_in.items()
        if m is not None
    ]
    if placed:
        await db.exec(upsert(db, _voucher_month), params=placed)  # type: ignore[call-overload]
    return months


def _settle(
    done: asyncio.Future[bool], first_time: bool = False, *, error: Exception | None = None
) -> None:
    # A request that went away (its client hung up) has cancelled its future already.
    if done.done():
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(first_time)


def _receipt(insert: Callable[[Table], Insert]) -> Insert:
    """The keys that were not there yet: executemany with RETURNING, compiled once."""
    statement = insert(RECEIPTS).on_conflict_do_nothing()  # type: ignore[attr-defined]
    return statement.returning(RECEIPTS.c.idempotency_key)  # type: ignore[no-any-return]


def _voucher_month(insert: Callable[[Table], Insert]) -> Insert:
    statement = insert(VOUCHER_MONTHS)
    return statement.on_conflict_do_update(  # type: ignore[attr-defined, no-any-return]
        index_elements=["client_id", "voucher_id"],
        set_={"year": statement.excluded.year, "month": statement.excluded.month},
    )
