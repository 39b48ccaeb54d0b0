"""The nightly job: refresh every client list (new clients appear marked Ny without a click)
and queue a full reconcile of every active client, as Tripletex advises beside webhooks.
Both for the systems that have them: a client list to re-read with the stored key, data to
fetch (a file's clients change only by a newer file)."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from sqlmodel import col, delete, select

from models import Client, Integration, WebhookReceipt
from models.base import utcnow
from services import audit_log, login_throttle
from services import integrations as integration_service
from services.connectors.base import ConnectKind
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import SessionFactory
from services.sessions import delete_expired_sessions
from services.sync import periods
from services.sync.pending import note_months

log = logging.getLogger(__name__)
RECEIPTS_KEPT = timedelta(days=7)


async def run_nightly(
    session_factory: SessionFactory,
    vault: KeyVault,
    connectors: Connectors,
    *,
    today: date,
    years: int,
) -> None:
    async with session_factory() as db:
        # First: nothing a system does below can keep ended logins in the table.
        await delete_expired_sessions(db)
        await login_throttle.forget_quiet(db)
        await db.commit()
    # The audit log past each office's retention (Innstillinger → Logg), in short batches.
    await audit_log.delete_expired(session_factory)
    by_key = [s for s, c in connectors.items() if c.capabilities.connect is ConnectKind.KEY]
    fetched = [s for s, c in connectors.items() if c.capabilities.connect is not ConnectKind.FILE]
    async with session_factory() as db:
        integration_ids = (
            await db.exec(
                select(Integration.id).where(
                    col(Integration.key_status) == "ok", col(Integration.system).in_(by_key)
                )
            )
        ).all()
    for integration_id in integration_ids:
        async with session_factory() as db:
            integration = await db.get(Integration, integration_id)
            if integration is None:
                continue
            try:
                result = await integration_service.refresh_clients(
                    db, vault, connectors[integration.system], integration
                )
                log.info("nightly refresh integration=%s added=%d", integration_id, result.added)
            except integration_service.InputError:
                log.warning("nightly refresh failed integration=%s", integration_id)
    async with session_factory() as db:
        # The systems retry a callback for far less than this: older receipts guard nothing.
        await db.exec(
            delete(WebhookReceipt).where(col(WebhookReceipt.received_at) < utcnow() - RECEIPTS_KEPT)
        )
        await db.commit()
    window = periods.window(today, years)
    async with session_factory() as db:
        client_ids = (
            await db.exec(
                select(Client.id)
                .join(Integration, col(Integration.id) == col(Client.integration_id))
                .where(col(Client.active), col(Integration.system).in_(fetched))
            )
        ).all()
        for client_id in client_ids:
            await note_months(db, client_id, window, source="nightly")
        await db.commit()
