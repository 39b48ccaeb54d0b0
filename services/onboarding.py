"""Integrations of systems connected by onboarding (ConnectKind.ONBOARDING, PowerOffice Go):
the user signs in at the system and approves clients, and the system hands us a key per
client. Those keys are kept encrypted on the clients (Client.key_ciphertext); the
integration itself has none.

The round trip: `start` asks the system for the URL to send the browser to, with our
callback carrying an unguessable state that the web keeps in the user's session
(`PendingOnboarding`); the system redirects back with a status and a one-time token;
`check_return` matches it to what was started; `create_onboarded_integration` or
`reonboard` exchange the token for the clients and store them in one transaction. Any
failure is an InputError in Norwegian, and nothing is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration
from models.base import utcnow
from services import audit
from services import clients as client_service
from services.audit import Actor
from services.connectors.base import ConnectKind, ErpError, ErpUnavailable, KeyRejected
from services.crypto import KeyVault
from services.integrations import (
    CLIENT_KEYS_KIND,
    InputError,
    audit_target,
    check_description,
    record_created,
)
from services.sync.status import SyncStatus

if TYPE_CHECKING:
    from services.connectors.registry import Connectors

# How long a started onboarding waits for the system's redirect (PowerOffice's
# TemporaryUrl is valid for less).
MAX_AGE_SECONDS = 3600
IDENTIFY_AT_ONCE = 4  # ClientIntegrationInformation requests in flight after a Finalize
FIELD = "onboarding"  # the form field its errors belong to


class Onboarded(Protocol):
    name: str
    org_number: str
    client_key: str


@runtime_checkable
class OnboardingConnector(Protocol):
    system: str
    display_name: str

    async def initiate(self, redirect_uri: str) -> tuple[str, datetime]: ...

    async def finalize(self, onboarding_token: str) -> tuple[str, Sequence[Onboarded]]: ...

    async def client_uuid(self, client_key: str) -> str: ...


def onboarding_connector(connectors: Connectors, system: str) -> OnboardingConnector | None:
    """The system by that name if it is connected by onboarding."""
    connector = connectors.get(system)
    if connector is None or connector.capabilities.connect is not ConnectKind.ONBOARDING:
        return None
    return connector if isinstance(connector, OnboardingConnector) else None


@dataclass(frozen=True)
class PendingOnboarding:
    """An onboarding the user started, kept in their session until the system redirects
    back: the state it must come back with, and what to do then."""

    state: str
    system: str
    description: str
    integration_id: int | None  # None: a new integration; else the one re-onboarded
    started: float  # epoch seconds

    def to_session(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_session(cls, value: object) -> PendingOnboarding | None:
        if not isinstance(value, dict):
            return None
        try:
            return cls(**value)
        except TypeError:
            return None


async def start(
    connector: OnboardingConnector,
    *,
    description: str,
    integration_id: int | None,
    callback_url: str,
) -> tuple[PendingOnboarding, str]:
    """Begin an onboarding: what to keep in the session, and the URL to send the user to."""
    pending = PendingOnboarding(
        state=secrets.token_urlsafe(32),
        system=connector.system,
        description=check_description(description),
        integration_id=integration_id,
        started=time.time(),
    )
    name = connector.display_name
    try:
        url, _valid_until = await connector.initiate(f"{callback_url}?state={pending.state}")
    except ErpError:
        raise InputError(
            FIELD,
            f"Fikk ikke kontakt med {name} akkurat nå, så tilkoblingen ble ikke startet. "
            "Prøv igjen om litt.",
        ) from None
    # The browser is sent there: only to a web address, https unless we run on http
    # ourselves (demo mode, with the simulator beside the app).
    target = urlsplit(url)
    allowed = {"https"} | ({"http"} if callback_url.startswith("http://") else set())
    if target.scheme not in allowed or not target.netloc:
        raise InputError(
            FIELD,
            f"{name} svarte med en adresse vi ikke sender deg videre til. Ingenting er lagret.",
        )
    return pending, url


# What the system's redirect says, beyond Success, in Norwegian. The statuses are
# PowerOffice's (Success, Canceled, ClientNotFound, NoClientAccess, IntegrationBlocked).
REFUSALS = {
    "canceled": "Tilkoblingen ble avbrutt i {name}. Ingenting er lagret.",
    "clientnotfound": (
        "{name} fant ingen klienter du kan koble til med brukeren du logget inn med. "
        "Ingenting er lagret. Sjekk at brukeren har tilgang til klientene i {name}."
    ),
    "noclientaccess": (
        "Brukeren du logget inn med i {name} har ikke tilgang til å koble til klientene. "
        "Ingenting er lagret. Be en administrator i {name} om tilgang, og prøv igjen."
    ),
    "integrationblocked": (
        "{name} har sperret denne integrasjonen. Ingenting er lagret. Kontakt {name} for å "
        "åpne den igjen."
    ),
}


def same_state(pending: PendingOnboarding, state: str) -> bool:
    """The redirect answers this onboarding (compared in constant time)."""
    return secrets.compare_digest(pending.state.encode(), state.encode())


def check_return(
    pending: PendingOnboarding | None,
    connector: OnboardingConnector,
    *,
    state: str,
    status: str,
    token: str,
    now: float | None = None,
) -> str:
    """The onboarding token of a redirect that answers the onboarding this user started;
    otherwise an InputError saying why, in Norwegian."""
    name = connector.display_name
    if pending is None or pending.system != connector.system or not same_state(pending, state):
        raise InputError(
            FIELD,
            f"Svaret fra {name} hører ikke til en tilkobling som ble startet i denne "
            "nettleseren, eller tilkoblingen er allerede fullført. Ingenting er lagret. "
            "Start tilkoblingen på nytt.",
        )
    if (now if now is not None else time.time()) - pending.started > MAX_AGE_SECONDS:
        raise InputError(
            FIELD,
            f"Tilkoblingen til {name} ble ikke fullført i tide. Ingenting er lagret. "
            "Start tilkoblingen på nytt.",
        )
    if status.lower() != "success" or not token:
        refusal = REFUSALS.get(status.lower())
        if refusal is None:
            refusal = (
                f"{name} fullførte ikke tilkoblingen (svar: «{status[:40]}»). Ingenting er lagret."
            )
        raise InputError(FIELD, refusal.format(name=name))
    return token


@dataclass(frozen=True)
class Identified:
    """An approved client with the system's own id for it."""

    erp_id: int
    client: Onboarded


async def finalize(connector: OnboardingConnector, token: str) -> list[Identified]:
    """The approved clients, each with the system's id for it; the failure in Norwegian."""
    name = connector.display_name
    try:
        _email, onboarded = await connector.finalize(token)
        identified = await _identify(connector, onboarded)
    except ErpUnavailable:
        raise InputError(
            FIELD,
            f"Fikk ikke kontakt med {name} akkurat nå. Ingenting er lagret. Prøv igjen om litt.",
        ) from None
    except ErpError as exc:
        # A spent or expired onboarding token: 400 Bad Request (or 401) from PowerOffice.
        if isinstance(exc, KeyRejected) or exc.status == 400:
            raise InputError(
                FIELD,
                f"{name} godtok ikke tilkoblingen (den er utløpt eller allerede brukt). "
                f"Ingenting er lagret. Koble til {name} på nytt.",
            ) from None
        raise InputError(
            FIELD,
            f"{name} svarte med en feil (status {exc.status}). Ingenting er lagret.",
        ) from None
    if not identified:
        raise InputError(FIELD, f"Ingen klienter ble godkjent i {name}. Ingenting er lagret.")
    return identified


async def _identify(
    connector: OnboardingConnector, onboarded: Sequence[Onboarded]
) -> list[Identified]:
    """Each client's id at the system (one small request per client, a few at a time); a
    client listed twice is kept once."""
    slots = asyncio.Semaphore(IDENTIFY_AT_ONCE)

    async def identify(item: Onboarded) -> Identified:
        async with slots:
            return Identified(_erp_id(await connector.client_uuid(item.client_key)), item)

    unique: dict[int, Identified] = {}
    for found in await asyncio.gather(*(identify(item) for item in onboarded)):
        unique.setdefault(found.erp_id, found)
    return list(unique.values())


async def create_onboarded_integration(
    db: AsyncSession,
    vault: KeyVault,
    connector: OnboardingConnector,
    actor: Actor,
    *,
    raw_description: str,
    token: str,
) -> Integration:
    """Finalize the onboarding and store the integration with its clients and their keys,
    in one transaction; nothing is stored when it fails."""
    description = check_description(raw_description)
    onboarded = await finalize(connector, token)
    integration = Integration(
        office_id=actor.office_id,
        system=connector.system,
        description=description,
        key_ciphertext="",
        key_last4="",
        key_kind=CLIENT_KEYS_KIND,
        erp_company_id=0,
        erp_company_name="",  # the approving user (an e-mail) is not ours to keep
        clients_refreshed_at=utcnow(),
    )
    db.add(integration)
    await db.flush()
    added = await merge_onboarded(db, vault, integration, onboarded)
    record_created(db, actor, integration, connector.display_name, clients=added)
    await db.commit()
    return integration


@dataclass(frozen=True)
class Reonboarded:
    added: int  # clients not connected before
    renewed: int  # clients connected before, with a new key (access regained included)


async def reonboard(
    db: AsyncSession,
    vault: KeyVault,
    connector: OnboardingConnector,
    integration: Integration,
    actor: Actor,
    token: str,
) -> Reonboarded:
    """Oppdater klientliste / Endre system: the clients approved this time come in (new ones
    inactive and marked new) or get their new key; the others keep theirs."""
    onboarded = await finalize(connector, token)
    added = await merge_onboarded(db, vault, integration, onboarded)
    integration.clients_refreshed_at = utcnow()
    integration.updated_at = utcnow()
    db.add(integration)
    result = Reonboarded(added=added, renewed=len(onboarded) - added)
    target = audit_target(integration, connector.display_name)
    audit.record(
        db, actor, "integration.refreshed", target, added=result.added, renewed=result.renewed
    )
    await db.commit()
    return result


async def merge_onboarded(
    db: AsyncSession, vault: KeyVault, integration: Integration, onboarded: Sequence[Identified]
) -> int:
    """Add the clients not seen before and give known ones their new key (re-onboarding);
    returns how many were added. A client is known by the system's id for it."""
    assert integration.id is not None
    found = await db.exec(select(Client).where(col(Client.integration_id) == integration.id))
    known = {client.erp_id: client for client in found.all()}
    added = 0
    for identified in onboarded:
        item = identified.client
        org = "".join(item.org_number.split())
        client = known.get(identified.erp_id)
        if client is None:
            client = Client(
                integration_id=integration.id,
                erp_id=identified.erp_id,
                name="",
                sort_key="",
                search_text="",
                is_new=bool(known),
            )
            added += 1
        client_service.describe(client, item.name[:300] or org, org)
        client.key_ciphertext = vault.encrypt(item.client_key)
        client.access_lost = False
        if client.active and client.sync_status in (SyncStatus.KEY_ERROR, SyncStatus.NO_ACCESS):
            client.sync_due_at = utcnow()  # waited for this key: synced again at once
        client.updated_at = utcnow()
        db.add(client)
    return added


def _erp_id(client_uuid: str) -> int:
    """The client's number here, from the system's id (a UUID): its first 60 bits, which
    fit our bigint column and do not repeat among one partner's clients in practice."""
    digits = "".join(ch for ch in client_uuid.lower() if ch in "0123456789abcdef")
    if len(digits) < 15:
        return int(hashlib.sha256(client_uuid.encode()).hexdigest()[:15], 16)
    return int(digits[:15], 16)
