"""The office's webhook (Innstillinger → Varsler): its URL, whether it is on, and its signing
secret, kept encrypted with the key vault."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import DataChange, NotificationEndpoint
from models.base import utcnow
from services import audit, outbound_guard
from services.audit import Actor
from services.crypto import KeyVault
from services.notifications.signing import new_secret
from services.outbound_guard import OutboundPolicy

# How the audit log names the office's webhook ("notifications.changed").
AUDIT_TARGET = "Varsler: webhook"


class NotificationInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def check_url(raw: str, policy: OutboundPolicy) -> str:
    """The URL to store, or NotificationInputError with the outbound guard's reason."""
    if not raw.strip():
        raise NotificationInputError("url", "Fyll inn adressen varslene skal sendes til.")
    try:
        return outbound_guard.check_url(raw, policy)
    except outbound_guard.UrlRefused as exc:
        raise NotificationInputError("url", exc.message) from exc


async def get_endpoint(db: AsyncSession, office_id: int) -> NotificationEndpoint | None:
    return (
        await db.exec(
            select(NotificationEndpoint).where(col(NotificationEndpoint.office_id) == office_id)
        )
    ).first()


async def save_endpoint(
    db: AsyncSession,
    vault: KeyVault,
    actor: Actor,
    raw_url: str,
    *,
    enabled: bool,
    policy: OutboundPolicy,
) -> tuple[NotificationEndpoint, str | None]:
    """Create or change the office's webhook; returns it and the new secret when created.
    A change is recorded in the audit log (a new secret only as changed)."""
    url = check_url(raw_url, policy)
    endpoint = await get_endpoint(db, actor.office_id)
    secret = None
    if endpoint is None:
        changes = changed_fields(url=(None, url), enabled=(None, enabled))
        changes["secret"] = audit.CHANGED
        secret = new_secret()
        endpoint = NotificationEndpoint(
            office_id=actor.office_id,
            url=url,
            secret_ciphertext=vault.encrypt(secret),
            enabled=enabled,
            # From now on: not the whole history at once.
            last_change_id=await _latest_change(db, actor.office_id),
        )
        db.add(endpoint)
    else:
        changes = changed_fields(url=(endpoint.url, url), enabled=(endpoint.enabled, enabled))
        if enabled and not endpoint.enabled:
            # Switched back on: announce what changes from now, not what was missed.
            endpoint.last_change_id = await _latest_change(db, actor.office_id)
        endpoint.url = url
        endpoint.enabled = enabled
        endpoint.updated_at = utcnow()
    if changes:
        audit.record(db, actor, "notifications.changed", AUDIT_TARGET, **changes)
    await db.commit()
    await db.refresh(endpoint)
    return endpoint, secret


def changed_fields(**pairs: tuple[object, object]) -> dict[str, object]:
    """The fields whose value changed, each as before → after (what the audit log keeps)."""
    return {
        name: {"before": before, "after": after}
        for name, (before, after) in pairs.items()
        if before != after
    }


async def _latest_change(db: AsyncSession, office_id: int) -> int:
    latest = (
        await db.exec(select(func.max(DataChange.id)).where(col(DataChange.office_id) == office_id))
    ).one()
    return int(latest or 0)


async def rotate_secret(
    db: AsyncSession, vault: KeyVault, endpoint: NotificationEndpoint, actor: Actor
) -> str:
    secret = new_secret()
    endpoint.secret_ciphertext = vault.encrypt(secret)
    endpoint.updated_at = utcnow()
    audit.record(db, actor, "notifications.changed", AUDIT_TARGET, secret=audit.CHANGED)
    await db.commit()
    return secret


def reveal_secret(vault: KeyVault, endpoint: NotificationEndpoint) -> str:
    return vault.decrypt(endpoint.secret_ciphertext)


async def delete_endpoint(db: AsyncSession, endpoint: NotificationEndpoint, actor: Actor) -> None:
    changes = changed_fields(url=(endpoint.url, None), enabled=(endpoint.enabled, None))
    audit.record(db, actor, "notifications.changed", AUDIT_TARGET, **changes)
    await db.delete(endpoint)  # its deliveries and attempts go with it
    await db.commit()
