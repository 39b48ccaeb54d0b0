"""The audit log: who changed what, and when.

`record` adds the event to the caller's session and does not commit: the change and its
record are written in one transaction, or neither is. Details carry before/after values,
counts and filters, never a secret: a changed key, token or password is recorded as
CHANGED, not by its value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from models.audit import AuditEvent
from models.base import utcnow
from services.auth import CurrentUser

CHANGED = "endret"  # what a secret's change shows in the log

# Every kind of event, with its Norwegian name for the log page's filter and rows.
KINDS: dict[str, str] = {
    "signin": "Pålogging",
    "signin.failed": "Mislykket pålogging",
    "signout": "Utlogging",
    "client.active": "Aktiv slått på/av",
    "client.send_data": "Send data slått på/av",
    "client.delete_accounts": "Slett kontoer slått på/av",
    "client.bulk": "Masseendring av klienter",
    "client.sync": "Synkronisering bestilt",
    "integration.created": "Integrasjon opprettet",
    "integration.changed": "Integrasjon endret",
    "integration.deleted": "Integrasjon slettet",
    "integration.refreshed": "Klientliste oppdatert",
    "saft.import": "SAF-T-import",
    "api_token.created": "API-nøkkel opprettet",
    "api_token.revoked": "API-nøkkel trukket tilbake",
    "notifications.changed": "Varslingsinnstillinger endret",
    "notifications.retry": "Varsel sendt på nytt",
    "user.invited": "Bruker invitert",
    "user.invitation_revoked": "Invitasjon trukket tilbake",
    "user.joined": "Invitasjon tatt i bruk",
    "user.role": "Rolle endret",
    "user.deactivated": "Bruker deaktivert",
    "user.reactivated": "Bruker aktivert igjen",
    "user.password": "Passord endret",
    "user.totp": "Tofaktor endret",
    "user.linked": "Koblet til identitetsleverandør",
    "signin_settings.changed": "Påloggingsinnstillinger endret",
    "audit.retention": "Loggens lagringstid endret",
}


@dataclass(frozen=True)
class Actor:
    """Who made a change: a signed-in person or an API token, of one office."""

    office_id: int
    label: str  # the e-mail, or "API-nøkkel: <name>"
    user_id: int | None = None
    token_id: int | None = None
    address: str = ""


def actor_of(user: CurrentUser, address: str = "") -> Actor:
    return Actor(office_id=user.office_id, label=user.email, user_id=user.id, address=address)


def token_actor(office_id: int, token_id: int, token_name: str) -> Actor:
    return Actor(office_id=office_id, label=f"API-nøkkel: {token_name}", token_id=token_id)


def attempt_actor(office_id: int, attempted: str, address: str = "") -> Actor:
    """Who a failed sign-in is by: nobody known (whoever typed it may not be the account's
    owner), so no user id; the label names the account tried, marked as failed. The
    account goes in the event's target too."""
    return Actor(office_id=office_id, label=f"{attempted or 'ukjent'} (mislykket)", address=address)


def record(
    db: AsyncSession,
    actor: Actor,
    kind: str,
    target: str = "",
    *,
    at: datetime | None = None,
    **details: Any,
) -> AuditEvent:
    """Adds the event to `db`'s transaction (the caller commits). `details` must be
    JSON-serialisable; Decimals and dates are written as text."""
    event = build(actor, kind, target, at=at, **details)
    db.add(event)
    return event


async def record_many(db: AsyncSession, events: Iterable[AuditEvent]) -> int:
    """Adds many built events to `db`'s transaction in one executemany INSERT (no ids read
    back: the ORM would insert them one by one on SQLite). Returns how many."""
    rows = [event.model_dump(exclude={"id"}) for event in events]
    if rows:
        await db.exec(insert(AuditEvent.__table__), params=rows)  # type: ignore[call-overload, arg-type]
    return len(rows)


def build(
    actor: Actor, kind: str, target: str = "", *, at: datetime | None = None, **details: Any
) -> AuditEvent:
    """The event `record` adds, not added to any session: for many at once (`record_many`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown audit kind {kind!r}")
    return AuditEvent(
        office_id=actor.office_id,
        at=at or utcnow(),
        actor_user_id=actor.user_id,
        actor_token_id=actor.token_id,
        actor_label=actor.label[:320],
        kind=kind,
        client_id=details["client_id"] if isinstance(details.get("client_id"), int) else None,
        target_label=target[:300],
        details=json.dumps(details, ensure_ascii=False, default=str) if details else "",
        address=actor.address[:64],
    )
