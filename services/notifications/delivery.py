"""Deliveries: new changes queued as events, each POSTed signed until a 2xx answers or the
retry schedule runs out, by a worker that several processes may run on one database.

Advancing an endpoint's change cursor and claiming a due delivery are both compare-and-set
updates, so each change becomes one delivery and each attempt is made by one process.

Every POST goes through the outbound guard (services/outbound_guard.py) with a hard deadline
over the whole attempt and at most 64 KB of the answer read. Each endpoint's deliveries run
in at most `per_endpoint` lanes: background tasks that take its due deliveries one after
another, so a slow receiver holds its own lanes and nothing else, and the worker's tick
starts lanes without waiting for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import ColumnElement, delete, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import (
    Client,
    DataChange,
    DeliveryStatus,
    NotificationAttempt,
    NotificationDelivery,
    NotificationEndpoint,
)
from models.base import utcnow
from services import publishing
from services.crypto import KeyVault
from services.db import SessionFactory
from services.notifications.email_alerts import EmailAlerts
from services.notifications.signing import signed_headers
from services.outbound_guard import FAILED, GuardedClient, OutboundError

log = logging.getLogger(__name__)

RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
CLAIM = timedelta(minutes=2)  # an attempt in flight; another process may retry after this
DEADLINE = 10.0  # seconds for a whole attempt: connect, request and answer (well under CLAIM)
KEEP_DELIVERIES = timedelta(days=30)
EVENT_TYPES = {
    "balances": "balances.updated",
    "accounts": "accounts.changed",
    "client_activated": "client.activated",
    "client_deactivated": "client.deactivated",
    "client_published": "client.published",
    "sync_failed": "sync.failed",
}
TEST_EVENT = "webhook.test"


async def queue_test_event(db: AsyncSession, endpoint: NotificationEndpoint) -> int:
    """A `webhook.test` delivery, so the office can check its receiver; returns its id.

    Queued as claimed: the caller attempts it at once, and the worker's tick must not send
    it a second time meanwhile. Should the caller never get to it, the worker takes it over
    when the claim runs out."""
    assert endpoint.id is not None
    now = utcnow()
    delivery = _delivery(endpoint.id, TEST_EVENT, None, {"message": "Testvarsel"}, now)
    delivery.next_attempt_at = now + CLAIM
    db.add(delivery)
    await db.commit()
    assert delivery.id is not None
    return delivery.id


async def retry_now(db: AsyncSession, endpoint_id: int, delivery_id: int) -> bool:
    """Prøv igjen: a failed (or waiting) delivery is attempted at the next tick."""
    result = await db.exec(
        update(NotificationDelivery)
        .where(
            col(NotificationDelivery.id) == delivery_id,
            col(NotificationDelivery.endpoint_id) == endpoint_id,
            col(NotificationDelivery.status) != DeliveryStatus.DELIVERED,
        )
        .values(status=DeliveryStatus.PENDING, next_attempt_at=utcnow())
    )
    await db.commit()
    return result.rowcount == 1


def _delivery(
    endpoint_id: int, event_type: str, client_id: int | None, data: dict, now: datetime
) -> NotificationDelivery:
    message_id = "msg_" + uuid.uuid4().hex
    body = {
        "type": event_type,
        "timestamp": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "data": data,
    }
    return NotificationDelivery(
        endpoint_id=endpoint_id,
        message_id=message_id,
        event_type=event_type,
        client_id=client_id,
        payload=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        next_attempt_at=now,
        created_at=now,
    )


# -- the worker --------------------------------------------------------------------------


class NotificationWorker:
    def __init__(
        self,
        session_factory: SessionFactory,
        vault: KeyVault,
        http: GuardedClient,
        *,
        now: Callable[[], datetime] = utcnow,
        batch: int = 50,
        concurrency: int = 8,
        per_endpoint: int = 2,
        deadline: float = DEADLINE,
    ) -> None:
        self._factory = session_factory
        self._vault = vault
        self._http = http
        self._now = now
        self._batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self._per_endpoint = per_endpoint
        self._deadline = deadline
        self._lanes: dict[int, set[asyncio.Task[int]]] = {}  # endpoint id → its running lanes

    async def run_once(self) -> tuple[int, int]:
        """One tick, waited for: new changes → deliveries, then every due delivery attempted
        (tests and tools; the background loop uses `tick`)."""
        queued = await self.dispatch()
        attempted = await self.deliver_due()
        return queued, attempted

    async def tick(self) -> None:
        """The background loop's tick: queue new changes and start lanes, waiting for none."""
        await self.dispatch()
        await self.start_due()
        if self._now().minute == 0:  # now and then: forget old deliveries
            await self.prune()

    async def dispatch(self) -> int:
        async with self._factory() as db:
            endpoints = list(
                (
                    await db.exec(
                        select(NotificationEndpoint).where(
                            col(NotificationEndpoint.enabled).is_(True)
                        )
                    )
                ).all()
            )
        queued = 0
        for endpoint in endpoints:
            queued += await self._dispatch_endpoint(endpoint)
        return queued

    async def _dispatch_endpoint(self, endpoint: NotificationEndpoint) -> int:
        assert endpoint.id is not None
        now = self._now()
        async with self._factory() as db:
            rows = (
                await db.exec(
                    select(DataChange, Client)
                    .join(Client, col(Client.id) == col(DataChange.client_id))
                    .where(
                        col(DataChange.office_id) == endpoint.office_id,
                        col(DataChange.id) > endpoint.last_change_id,
                        col(DataChange.changed_at) <= now - publishing.SETTLE,
                    )
                    .order_by(col(DataChange.id))
                    .limit(500)
                )
            ).all()
            if not rows:
                return 0
            last_id = rows[-1][0].id
            claimed = await db.exec(
                update(NotificationEndpoint)
                .where(
                    col(NotificationEndpoint.id) == endpoint.id,
                    col(NotificationEndpoint.last_change_id) == endpoint.last_change_id,
                )
                .values(last_change_id=last_id)
            )
            if claimed.rowcount != 1:
                await db.rollback()  # another process took this batch
                return 0
            events: dict[tuple[int, str], dict] = {}
            for change, client in rows:
                if not client.send_data:
                    continue  # not published
                event = events.setdefault(
                    (change.client_id, change.kind),
                    {"client_id": change.client_id, "change_id": change.id},
                )
                event["change_id"] = change.id
                if change.kind == "balances":
                    period = {"year": change.year, "month": change.month}
                    periods = event.setdefault("periods", [])
                    if period not in periods:
                        periods.append(period)
                if change.kind == "sync_failed":
                    event["message"] = client.sync_error
            for (client_id, kind), data in events.items():
                if "periods" in data:
                    data["periods"].sort(key=lambda p: (p["year"], p["month"] or 0))
                db.add(_delivery(endpoint.id, EVENT_TYPES[kind], client_id, data, now))
            await db.commit()
        return len(events)

    async def deliver_due(self) -> int:
        """Attempt every due delivery and wait for the attempts; returns how many were made."""
        # asyncio.wait, not gather: a cancelled gather returns as soon as one lane has ended,
        # leaving the others closing their database connections after we returned. Lanes
        # still running when this is cancelled are close()'s to end.
        lanes = await self.start_due()
        if lanes:
            await asyncio.wait(lanes)
        attempted = sum(
            lane.result() for lane in lanes if not lane.cancelled() and not lane.exception()
        )
        if self._now().minute == 0:
            await self.prune()
        return attempted

    async def start_due(self) -> list[asyncio.Task[int]]:
        """Lanes for the endpoints with due deliveries, up to `per_endpoint` each, started and
        not waited for; returns the new ones."""
        full = [e for e, lanes in self._lanes.items() if len(lanes) >= self._per_endpoint]
        async with self._factory() as db:
            due = (
                await db.exec(
                    select(col(NotificationDelivery.endpoint_id), func.count())
                    .join(NotificationEndpoint, _OF_ENDPOINT)
                    .where(*_due(self._now()), col(NotificationDelivery.endpoint_id).not_in(full))
                    .group_by(col(NotificationDelivery.endpoint_id))
                    .order_by(func.min(col(NotificationDelivery.next_attempt_at)))
                    .limit(self._batch)
                )
            ).all()
            await db.commit()
        started: list[asyncio.Task[int]] = []
        for endpoint_id, count in due:
            lanes = self._lanes.setdefault(endpoint_id, set())
            for _ in range(min(count, self._per_endpoint - len(lanes))):
                lane = asyncio.create_task(self._lane(endpoint_id), name=f"notify-{endpoint_id}")
                lanes.add(lane)
                lane.add_done_callback(partial(self._lane_done, endpoint_id))
                started.append(lane)
        return started

    def _lane_done(self, endpoint_id: int, lane: asyncio.Task[int]) -> None:
        lanes = self._lanes[endpoint_id]
        lanes.discard(lane)
        if not lanes:
            del self._lanes[endpoint_id]
        if not lane.cancelled() and lane.exception() is not None:
            log.error("notification lane failed", exc_info=lane.exception())

    async def _lane(self, endpoint_id: int) -> int:
        """One endpoint's due deliveries, one at a time, until none is left."""
        attempted = 0
        while True:
            async with self._slots:
                delivery_id = await self._claim_next(endpoint_id)
                if delivery_id is None:
                    return attempted
                await self.deliver(delivery_id)
            attempted += 1

    async def _claim_next(self, endpoint_id: int) -> int | None:
        while True:
            now = self._now()
            async with self._factory() as db:
                delivery_id = (
                    await db.exec(
                        select(NotificationDelivery.id)
                        .join(NotificationEndpoint, _OF_ENDPOINT)
                        .where(*_due(now), col(NotificationDelivery.endpoint_id) == endpoint_id)
                        .order_by(col(NotificationDelivery.next_attempt_at))
                        .limit(1)
                    )
                ).first()
                if delivery_id is None:
                    await db.commit()
                    return None
                # Still due: nobody else has claimed it (a claim moves it into the future).
                claimed = await db.exec(
                    update(NotificationDelivery)
                    .where(
                        col(NotificationDelivery.id) == delivery_id,
                        col(NotificationDelivery.status) == DeliveryStatus.PENDING,
                        col(NotificationDelivery.next_attempt_at) <= now,
                    )
                    .values(next_attempt_at=now + CLAIM)
                )
                await db.commit()
            if claimed.rowcount == 1:
                return delivery_id

    async def deliver(self, delivery_id: int) -> bool:
        """One attempt of one delivery, recorded; returns whether it was accepted (2xx).

        Whatever goes wrong before an answer is this attempt's failure, counted and retried on
        the schedule: never an exception for the caller (Send testvarsel) or the other lanes."""
        async with self._factory() as db:
            delivery = await db.get(NotificationDelivery, delivery_id)
            if delivery is None:
                return False
            endpoint = await db.get(NotificationEndpoint, delivery.endpoint_id)
            if endpoint is None:
                return False
            url, message_id, body = endpoint.url, delivery.message_id, delivery.payload.encode()
            secret_ciphertext = endpoint.secret_ciphertext
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            secret = self._vault.decrypt(secret_ciphertext)
            timestamp = int(time.time())  # the moment of sending, whatever the schedule's clock
            headers = signed_headers(secret, message_id, timestamp, body)
            answer = await self._http.post(url, body=body, headers=headers, deadline=self._deadline)
            status_code = answer.status
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except OutboundError as exc:
            error = exc.reason
            log.info("notification delivery=%s not sent: %s", delivery_id, exc)
        except Exception:
            error = FAILED
            log.exception("notification delivery=%s could not be sent", delivery_id)
        duration_ms = int((time.monotonic() - started) * 1000)
        ok = error is None
        now = self._now()
        async with self._factory() as db:
            delivery = await db.get(NotificationDelivery, delivery_id)
            if delivery is None:
                return ok  # deleted with its endpoint meanwhile
            db.add(
                NotificationAttempt(
                    delivery_id=delivery_id,
                    attempted_at=now,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration_ms,
                    ok=ok,
                )
            )
            delivery.attempts += 1
            delivery.last_status_code = status_code
            delivery.last_error = error
            if ok:
                delivery.status = DeliveryStatus.DELIVERED
                delivery.delivered_at = now
                delivery.next_attempt_at = None
            elif delivery.attempts >= MAX_ATTEMPTS:
                delivery.status = DeliveryStatus.FAILED
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = now + RETRY_SCHEDULE[delivery.attempts - 1]
            await db.commit()
        log.info(
            "notification %s delivery=%s type=%s status=%s ms=%d",
            "delivered" if ok else "failed", delivery_id, delivery.event_type,
            status_code if status_code is not None else error, duration_ms,
        )  # fmt: skip
        return ok

    async def prune(self) -> None:
        async with self._factory() as db:
            await db.exec(
                delete(NotificationDelivery).where(
                    col(NotificationDelivery.created_at) < self._now() - KEEP_DELIVERIES,
                    col(NotificationDelivery.status) != DeliveryStatus.PENDING,
                )
            )
            await db.commit()

    async def close(self) -> None:
        """Cancel the lanes and wait until they have ended; an attempt cut short is retried
        once its claim runs out."""
        lanes = [lane for lanes in self._lanes.values() for lane in lanes]
        for lane in lanes:
            if not lane.cancelling():  # cancelled twice, aiosqlite's close can wait forever
                lane.cancel()
        if lanes:
            await asyncio.wait(lanes)


_OF_ENDPOINT = col(NotificationEndpoint.id) == col(NotificationDelivery.endpoint_id)


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """A delivery waiting for an attempt now, of an enabled endpoint (joined by _OF_ENDPOINT)."""
    return (
        col(NotificationEndpoint.enabled).is_(True),
        col(NotificationDelivery.status) == DeliveryStatus.PENDING,
        col(NotificationDelivery.next_attempt_at) <= now,
    )


@asynccontextmanager
async def running_notifications(
    session_factory: SessionFactory,
    vault: KeyVault,
    http: GuardedClient,
    *,
    enabled: bool,
    interval: float = 2.0,
    deadline: float = DEADLINE,
    alerts: EmailAlerts | None = None,
) -> AsyncIterator[NotificationWorker | None]:
    """The worker as a background task of the app, ticking every `interval` seconds; and
    beside it the e-mail alerts (when SMTP is configured), looking every `alerts.interval`."""
    if not enabled:
        yield None
        return
    worker = NotificationWorker(session_factory, vault, http, deadline=deadline)

    async def loop(name: str, tick: Callable[[], Awaitable[object]], every: float) -> None:
        while True:
            try:
                await tick()
            except Exception:
                # A library that turns our cancellation into another exception must not keep
                # this loop alive: shutdown would wait for it for ever.
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise asyncio.CancelledError from None
                log.exception("%s tick failed", name)
            await asyncio.sleep(every)

    tasks = [
        asyncio.create_task(
            loop("notification worker", worker.tick, interval), name="notifications"
        )
    ]
    if alerts is not None:
        tasks.append(
            asyncio.create_task(
                loop("e-mail alerts", alerts.run_once, alerts.interval), name="email-alerts"
            )
        )
    try:
        yield worker
    finally:
        for task in tasks:
            task.cancel()
        try:
            # Not `suppress(CancelledError): await task`: that would swallow a cancellation of
            # the caller too, and it would carry on as if never cancelled.
            await asyncio.wait(tasks)
        finally:
            await worker.close()
