"""Keeping a client's change subscriptions at the ERP as they should be.

Wanted: one subscription per event while the client is active and the ERP can reach us (a
public URL is configured); none otherwise. `reconcile` runs under the client's sync lease
(so two processes never subscribe one client twice), before each sync of an active client
and for inactive clients that still hold subscriptions. Once a day it also asks the ERP
for their status: one that was disabled (too many errors, rate limit) is switched back on,
and until that works the client is polled.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration, LiveMode, WebhookSubscription
from models.base import utcnow
from services import clients
from services import integrations as integration_service
from services.connectors.base import CompanyRef, Connector, ErpError, RemoteSubscription
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import SessionFactory

log = logging.getLogger(__name__)
ACTIVE = "ACTIVE"
CHECK_EVERY = timedelta(hours=20)  # the nightly reconcile sees every subscription once a day
RECEIVER_PREFIX = "/webhooks/"  # then the system, then the subscription's hook id
# Built once: it runs before every sync.
SUBSCRIPTIONS_OF = select(WebhookSubscription).where(
    col(WebhookSubscription.client_id) == bindparam("client_id")
)


def callback_url(public_base_url: str, system: str, hook_id: str) -> str:
    return f"{public_base_url.rstrip('/')}{RECEIVER_PREFIX}{system}/{hook_id}"


@dataclass(frozen=True)
class ClientRef:
    connector: Connector
    client_id: int
    key: str
    company: CompanyRef


class SubscriptionManager:
    def __init__(
        self,
        session_factory: SessionFactory,
        vault: KeyVault,
        connectors: Connectors,
        public_base_url: str | None,
    ) -> None:
        self._factory = session_factory
        self._vault = vault
        self._connectors = connectors
        self._public_base_url = public_base_url

    async def reconcile(self, client_id: int) -> LiveMode | None:
        """Make the client's subscriptions what they should be; returns its live mode (None
        when the client is gone). ERP errors are logged, never raised: the client is then
        polled, and the next sync tries again."""
        async with self._factory() as db:
            row = await clients.with_integration(db, client_id)
            if row is None:
                return None
            client, integration = row
            of_client = await db.exec(SUBSCRIPTIONS_OF, params={"client_id": client_id})  # type: ignore[call-overload]
            subs = list(of_client.all())
        connector = self._connectors.get(integration.system)
        reachable = client.active and not client.access_lost and integration.key_status == "ok"
        calls_us = connector is not None and connector.capabilities.webhooks
        wanted = reachable and calls_us and self._public_base_url is not None
        if connector is None or (not wanted and not subs):
            mode = LiveMode.POLLING  # the common case without a public URL: nothing to ask
        elif wanted and self._in_order(connector, subs):
            mode = LiveMode.WEBHOOKS  # the common case with one: nothing to ask either
        else:
            ref = ClientRef(
                connector=connector,
                client_id=client_id,
                key=integration_service.key_of(self._vault, integration, client),
                company=CompanyRef.of(client.erp_id, integration.key_kind),
            )
            mode = await self._reconcile(ref, subs, wanted)
        if client.live_mode != mode:
            async with self._factory() as db:
                await db.exec(
                    update(Client).where(col(Client.id) == client_id).values(live_mode=mode)
                )
                await db.commit()
        return mode

    def _in_order(self, connector: Connector, subs: list[WebhookSubscription]) -> bool:
        """Every event subscribed, active when the ERP was last asked, and asked lately."""
        by_event = {sub.event: sub for sub in subs}
        recent = utcnow() - CHECK_EVERY
        return all(
            (sub := by_event.get(event)) is not None
            and sub.erp_subscription_id is not None
            and sub.erp_status == ACTIVE
            and sub.checked_at is not None
            and sub.checked_at >= recent
            for event in connector.events
        )

    async def _reconcile(
        self, ref: ClientRef, subs: list[WebhookSubscription], wanted: bool
    ) -> LiveMode:
        try:
            if wanted:
                return await self._ensure(ref, subs)
            await self._remove(ref, subs)
            return LiveMode.POLLING
        except ErpError as exc:
            log.warning(
                "webhook subscriptions failed client=%s error=%s",
                ref.client_id,
                type(exc).__name__,
            )
            return LiveMode.FALLBACK if wanted else LiveMode.POLLING

    async def _remove(self, ref: ClientRef, subs: list[WebhookSubscription]) -> None:
        for sub in subs:
            if sub.erp_subscription_id is not None:
                try:
                    await ref.connector.unsubscribe(ref.key, ref.company, sub.erp_subscription_id)
                except ErpError as exc:
                    # Forgotten here all the same: its callbacks then get 404 until the ERP
                    # disables it, which beats retrying a lost client on every tick.
                    log.warning(
                        "unsubscribe failed client=%s error=%s", ref.client_id, type(exc).__name__
                    )
            async with self._factory() as db:
                row = await db.get(WebhookSubscription, sub.id)
                if row is not None:
                    await db.delete(row)
                    await db.commit()

    async def _ensure(self, ref: ClientRef, subs: list[WebhookSubscription]) -> LiveMode:
        assert self._public_base_url is not None
        by_event = {sub.event: sub for sub in subs}
        now = utcnow()
        if any(s.checked_at is None or s.checked_at < now - CHECK_EVERY for s in subs):
            await self._check(ref, subs)
        # Per event, the status the ERP last gave; none for one it does not have.
        statuses = {sub.event: sub.erp_status for sub in subs if sub.erp_subscription_id}
        connector = ref.connector
        for event in connector.events:
            sub = by_event.get(event)
            if sub is None or sub.erp_subscription_id is None:
                sub = sub or await self._new_row(ref.client_id, event)
                secret = self._vault.decrypt(sub.secret_ciphertext)
                remote = await connector.subscribe(
                    ref.key,
                    ref.company,
                    event,
                    callback_url(self._public_base_url, connector.system, sub.hook_id),
                    secret,
                )
                await self._save(sub.id, remote)
                statuses[event] = remote.status
                log.info("subscribed client=%s event=%s", ref.client_id, event)
            elif sub.erp_status != ACTIVE:
                remote = await connector.renew_subscription(
                    ref.key, ref.company, sub.erp_subscription_id
                )
                await self._save(sub.id, remote)
                statuses[event] = remote.status
                log.info("renewed subscription client=%s event=%s", ref.client_id, event)
        all_active = all(statuses.get(event) == ACTIVE for event in connector.events)
        return LiveMode.WEBHOOKS if all_active else LiveMode.FALLBACK

    async def _check(self, ref: ClientRef, subs: list[WebhookSubscription]) -> None:
        """Ask the ERP how our subscriptions are; one it no longer has is made again."""
        listed = await ref.connector.list_subscriptions(ref.key, ref.company)
        remote = {r.erp_id: r for r in listed}
        async with self._factory() as db:
            for sub in subs:
                row = await db.get(WebhookSubscription, sub.id)
                if row is None:
                    continue
                found = remote.get(row.erp_subscription_id or -1)
                if found is None:
                    row.erp_subscription_id, row.erp_status = None, "MISSING"
                else:
                    if found.status != row.erp_status:
                        log.warning(
                            "subscription status client=%s event=%s status=%s",
                            ref.client_id,
                            row.event,
                            found.status,
                        )
                    row.erp_status = found.status
                row.checked_at = utcnow()
                sub.erp_subscription_id, sub.erp_status = row.erp_subscription_id, row.erp_status
            await db.commit()

    async def _new_row(self, client_id: int, event: str) -> WebhookSubscription:
        async with self._factory() as db:
            sub = WebhookSubscription(
                client_id=client_id,
                event=event,
                hook_id=secrets.token_urlsafe(24),
                secret_ciphertext=self._vault.encrypt(secrets.token_urlsafe(32)),
            )
            db.add(sub)
            await db.commit()
            await db.refresh(sub)
            return sub

    async def _save(self, sub_id: int | None, remote: RemoteSubscription) -> None:
        async with self._factory() as db:
            row = await db.get(WebhookSubscription, sub_id)
            if row is not None:
                row.erp_subscription_id = remote.erp_id
                row.erp_status = remote.status
                row.checked_at = utcnow()
                await db.commit()


async def subscriptions_of_integration(
    db: AsyncSession, integration: Integration
) -> list[tuple[CompanyRef, int]]:
    """The subscriptions an integration's clients hold at the ERP (company, ERP id)."""
    rows = (
        await db.exec(
            select(Client.erp_id, WebhookSubscription.erp_subscription_id)
            .join(Client, col(Client.id) == col(WebhookSubscription.client_id))
            .where(
                col(Client.integration_id) == integration.id,
                col(WebhookSubscription.erp_subscription_id).is_not(None),
            )
        )
    ).all()
    return [
        (CompanyRef.of(erp_id, integration.key_kind), sub_id) for erp_id, sub_id in rows if sub_id
    ]


async def unsubscribe_all(
    connector: Connector, key: str, subscriptions: list[tuple[CompanyRef, int]]
) -> None:
    """Remove subscriptions at the ERP as far as it lets us (Slett system, after the rows
    are gone). One that stays calls into a 404 until the ERP disables it."""
    gate = asyncio.Semaphore(4)

    async def remove(company: CompanyRef, erp_id: int) -> None:
        async with gate:
            try:
                await connector.unsubscribe(key, company, erp_id)
            except ErpError as exc:
                log.warning(
                    "unsubscribe failed subscription=%s error=%s", erp_id, type(exc).__name__
                )

    await asyncio.gather(*(remove(company, erp_id) for company, erp_id in subscriptions))
