"""The office's webhook (Innstillinger → Varsler): its URL, whether it is on, and its signing
secret, kept encrypted with the key vault."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import func
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models import DataChange, NotificationEndpoint
from models.base import utcnow
from models.notifications import DeliveryStatus, NotificationDelivery
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
        changes = {**url_changes(None, url), **changed_fields(enabled=(None, enabled))}
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
        changes = {
            **url_changes(endpoint.url, url),
            **changed_fields(enabled=(endpoint.enabled, enabled)),
        }
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
    changes = {
        **url_changes(endpoint.url, None),
        **changed_fields(enabled=(endpoint.enabled, None)),
    }
    audit.record(db, actor, "notifications.changed", AUDIT_TARGET, **changes)
    await db.delete(endpoint)  # its deliveries and attempts go with it
    await db.commit()


async def retry_delivery(
    db: AsyncSession, actor: Actor, endpoint_id: int, delivery_id: int
) -> bool:
    """Prøv igjen: a failed (or waiting) delivery is attempted at the next tick; recorded
    with the message and its event. False: no such delivery of this endpoint, or delivered."""
    where = (
        col(NotificationDelivery.id) == delivery_id,
        col(NotificationDelivery.endpoint_id) == endpoint_id,
        col(NotificationDelivery.status) != DeliveryStatus.DELIVERED,
    )
    delivery = (await db.exec(select(NotificationDelivery).where(*where))).first()
    if delivery is None:
        return False
    before = delivery.status
    queued = await db.exec(
        update(NotificationDelivery)
        .where(*where)
        .values(status=DeliveryStatus.PENDING, next_attempt_at=utcnow())
    )
    if queued.rowcount != 1:  # delivered meanwhile
        await db.rollback()
        return False
    audit.record(
        db,
        actor,
        "notifications.retry",
        AUDIT_TARGET,
        message_id=delivery.message_id,
        event_type=delivery.event_type,
        status={"before": before, "after": DeliveryStatus.PENDING.value},
    )
    await db.commit()
    return True


def url_changes(before: str | None, after: str | None) -> dict[str, object]:
    """A webhook address in the log: scheme://host[:port] before → after, and the rest (a
    path, query or user part may carry a bearer token) only as changed."""
    changes = changed_fields(url=(_origin(before), _origin(after)))
    if _rest(before) != _rest(after):
        changes["url_path"] = audit.CHANGED
    return changes


def _origin(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}"


def _rest(url: str | None) -> str:
    if url is None:
        return ""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    return "\n".join((user, parts.path, parts.query, parts.fragment))
