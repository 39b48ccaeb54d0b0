"""The office's webhook (Innstillinger → Varsler): its URL, whether it is on, and its signing
secret, kept encrypted with the key vault."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import DataChange, NotificationEndpoint
from models.base import utcnow
from services.crypto import KeyVault
from services.notifications.signing import new_secret


class NotificationInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


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
            "url",
            "Bruk https://. Ukryptert http:// er bare tillatt til denne maskinen (localhost).",
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
