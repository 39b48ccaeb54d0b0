"""Outbound notifications: an office's webhook, signed as Standard Webhooks specifies.

Changes are recorded in `data_change` with the data (services/publishing.py). A worker in
each process turns new changes into deliveries (one event per client and kind, per batch)
and POSTs them: headers `webhook-id` (the same on every retry), `webhook-timestamp` (Unix
seconds of the attempt) and `webhook-signature` (`v1,` + base64 HMAC-SHA256 of
`{id}.{timestamp}.{body}` under the endpoint's `whsec_` secret). A delivery that does not
get a 2xx is retried after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h (about a day in all),
then marked failed. Every attempt is kept for the leveranselogg.

Several processes may run the worker on one database: advancing an endpoint's change cursor
and claiming a due delivery are both compare-and-set updates, so each change becomes one
delivery and each attempt is made by one process.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, update
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

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
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
STATUS_LABELS = {
    DeliveryStatus.PENDING: "Venter",
    DeliveryStatus.DELIVERED: "Levert",
    DeliveryStatus.FAILED: "Feilet",
}


class NotificationInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# -- signing -----------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one attempt."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": "erp-integrasjon-webhooks/1",
    }


# -- the office's endpoint ---------------------------------------------------------------


def check_url(raw: str) -> str:
    """https:// anywhere; plain http:// only to this machine (development, tests)."""
    url = raw.strip()
    if not url:
        raise NotificationInputError("url", "Fyll inn adressen varslene skal sendes til.")
    if len(url) > 2000:
        raise NotificationInputError("url", "Adressen er for lang (høyst 2000 tegn).")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotificationInputError("url", "Adressen må begynne med https://")
    if parts.username or parts.password:
        raise NotificationInputError("url", "Adressen kan ikke inneholde brukernavn eller passord.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise NotificationInputError(
            "url", "Bruk https:// – varsler sendes bare ukryptert til denne maskinen."
        )
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def get_endpoint(db: AsyncSession, office_id: int) -> NotificationEndpoint | None:
    return (
        await db.exec(
            select(NotificationEndpoint).where(col(NotificationEndpoint.office_id) == office_id)
        )
    ).first()


async def save_endpoint(
    db: AsyncSession, vault: KeyVault, office_id: int, raw_url: str, *, enabled: bool
) -> tuple[NotificationEndpoint, str | None]:
    """Create or change the office's webhook; returns it and the new secret when created."""
    url = check_url(raw_url)
    endpoint = await get_endpoint(db, office_id)
    secret = None
    if endpoint is None:
        secret = new_secret()
        endpoint = NotificationEndpoint(
            office_id=office_id,
            url=url,
            secret_ciphertext=vault.encrypt(secret),
            enabled=enabled,
            # From now on: not the whole history at once.
            last_change_id=await _latest_change(db, office_id),
        )
        db.add(endpoint)
    else:
        if enabled and not endpoint.enabled:
            # Switched back on: announce what changes from now, not what was missed.
            endpoint.last_change_id = await _latest_change(db, office_id)
        endpoint.url = url
        endpoint.enabled = enabled
        endpoint.updated_at = utcnow()
    await db.commit()
    await db.refresh(endpoint)
    return endpoint, secret


async def _latest_change(db: AsyncSession, office_id: int) -> int:
    from sqlalchemy import func

    latest = (
        await db.exec(select(func.max(DataChange.id)).where(col(DataChange.office_id) == office_id))
    ).one()
    return int(latest or 0)


async def rotate_secret(db: AsyncSession, vault: KeyVault, endpoint: NotificationEndpoint) -> str:
    secret = new_secret()
    endpoint.secret_ciphertext = vault.encrypt(secret)
    endpoint.updated_at = utcnow()
    await db.commit()
    return secret


def reveal_secret(vault: KeyVault, endpoint: NotificationEndpoint) -> str:
    return vault.decrypt(endpoint.secret_ciphertext)


async def delete_endpoint(db: AsyncSession, endpoint: NotificationEndpoint) -> None:
    await db.delete(endpoint)  # its deliveries and attempts go with it
    await db.commit()


@dataclass(frozen=True)
class LogEntry:
    delivery: NotificationDelivery
    attempts: list[NotificationAttempt]

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
    return [LogEntry(d, attempts.get(d.id or 0, [])) for d in deliveries]


async def queue_test_event(db: AsyncSession, endpoint: NotificationEndpoint) -> int:
    """A `webhook.test` delivery, so the office can check its receiver; returns its id."""
    assert endpoint.id is not None
    delivery = _delivery(endpoint.id, TEST_EVENT, None, {"message": "Testvarsel"}, utcnow())
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
        http: httpx.AsyncClient,
        *,
        now: Callable[[], datetime] = utcnow,
        batch: int = 50,
        concurrency: int = 8,
        timeout: float = 10.0,
    ) -> None:
        self._factory = session_factory
        self._vault = vault
        self._http = http
        self._now = now
        self._batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout = timeout

    async def run_once(self) -> tuple[int, int]:
        """One tick: new changes → deliveries, then due deliveries → attempts."""
        queued = await self.dispatch()
        attempted = await self.deliver_due()
        return queued, attempted

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
        now = self._now()
        async with self._factory() as db:
            due = list(
                (
                    await db.exec(
                        select(NotificationDelivery.id)
                        .join(
                            NotificationEndpoint,
                            col(NotificationEndpoint.id) == col(NotificationDelivery.endpoint_id),
                        )
                        .where(
                            col(NotificationEndpoint.enabled).is_(True),
                            col(NotificationDelivery.status) == DeliveryStatus.PENDING,
                            col(NotificationDelivery.next_attempt_at) <= now,
                        )
                        .order_by(col(NotificationDelivery.next_attempt_at))
                        .limit(self._batch)
                    )
                ).all()
            )
            await db.commit()
        attempted = await asyncio.gather(*(self._claim_and_deliver(i) for i in due))
        if self._now().minute == 0:  # now and then: forget old deliveries
            await self.prune()
        return sum(attempted)

    async def _claim_and_deliver(self, delivery_id: int) -> bool:
        async with self._slots:
            now = self._now()
            async with self._factory() as db:
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
                if claimed.rowcount != 1:
                    return False
            await self.deliver(delivery_id)
            return True

    async def deliver(self, delivery_id: int) -> bool:
        """One attempt of one delivery, recorded; returns whether it was accepted (2xx)."""
        async with self._factory() as db:
            delivery = await db.get(NotificationDelivery, delivery_id)
            if delivery is None:
                return False
            endpoint = await db.get(NotificationEndpoint, delivery.endpoint_id)
            if endpoint is None:
                return False
            url, message_id, body = endpoint.url, delivery.message_id, delivery.payload.encode()
            secret = self._vault.decrypt(endpoint.secret_ciphertext)
        timestamp = int(time.time())  # the moment of sending, whatever the schedule's clock
        headers = signed_headers(secret, message_id, timestamp, body)
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self._http.post(
                url, content=body, headers=headers, timeout=self._timeout, follow_redirects=False
            )
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:300]
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


@asynccontextmanager
async def running_notifications(
    session_factory: SessionFactory,
    vault: KeyVault,
    http: httpx.AsyncClient,
    *,
    enabled: bool,
    interval: float = 2.0,
) -> AsyncIterator[NotificationWorker | None]:
    """The worker as a background task of the app, ticking every `interval` seconds."""
    if not enabled:
        yield None
        return
    worker = NotificationWorker(session_factory, vault, http)

    async def loop() -> None:
        while True:
            try:
                await worker.run_once()
            except Exception:
                log.exception("notification worker tick failed")
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name="notifications")
    try:
        yield worker
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
