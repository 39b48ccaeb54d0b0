"""Integrations of systems connected by onboarding (ConnectKind.ONBOARDING, PowerOffice Go):
the user approves clients at the system, which hands us a key per client. Those keys are
kept encrypted on the clients (Client.key_ciphertext); the integration itself has none.

What is here is the part after the system's redirect: exchanging the one-time onboarding
token for the clients and storing them. Starting the onboarding and taking the redirect are
the web's (issue 18, not built yet)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration
from models.base import utcnow
from services import clients as client_service
from services.connectors.base import ErpError, ErpUnavailable, KeyRejected
from services.crypto import KeyVault
from services.integrations import InputError, check_description

# Integration.key_kind of an integration whose keys are its clients'.
ONBOARDED_KEY_KIND = "per_client"


class Onboarded(Protocol):
    name: str
    org_number: str
    client_key: str


class OnboardingConnector(Protocol):
    system: str
    display_name: str

    async def finalize(self, onboarding_token: str) -> tuple[str, Sequence[Onboarded]]: ...


async def finalize(connector: OnboardingConnector, token: str) -> tuple[str, Sequence[Onboarded]]:
    """The approving user's e-mail and the approved clients; the failure in Norwegian."""
    name = connector.display_name
    try:
        email, onboarded = await connector.finalize(token)
    except KeyRejected:
        raise InputError(
            "onboarding",
            f"{name} godtok ikke tilkoblingen (den er utløpt eller allerede brukt). "
            f"Ingenting er lagret. Koble til {name} på nytt.",
        ) from None
    except ErpUnavailable:
        raise InputError(
            "onboarding",
            f"Fikk ikke kontakt med {name} akkurat nå. Ingenting er lagret. Prøv igjen om litt.",
        ) from None
    except ErpError as exc:
        raise InputError(
            "onboarding",
            f"{name} svarte med en feil (status {exc.status}). Ingenting er lagret.",
        ) from None
    if not onboarded:
        raise InputError(
            "onboarding", f"Ingen klienter ble godkjent i {name}. Ingenting er lagret."
        )
    return email, onboarded


async def create_onboarded_integration(
    db: AsyncSession,
    vault: KeyVault,
    connector: OnboardingConnector,
    *,
    office_id: int,
    raw_description: str,
    token: str,
) -> Integration:
    """Finalize the onboarding and store the integration with its clients and their keys,
    in one transaction; nothing is stored when it fails."""
    description = check_description(raw_description)
    email, onboarded = await finalize(connector, token)
    integration = Integration(
        office_id=office_id,
        system=connector.system,
        description=description,
        key_ciphertext="",
        key_last4="",
        key_kind=ONBOARDED_KEY_KIND,
        erp_company_id=0,
        erp_company_name=email[:300],
        clients_refreshed_at=utcnow(),
    )
    db.add(integration)
    await db.flush()
    await merge_onboarded(db, vault, integration, onboarded)
    await db.commit()
    return integration


async def merge_onboarded(
    db: AsyncSession, vault: KeyVault, integration: Integration, onboarded: Sequence[Onboarded]
) -> int:
    """Add the clients not seen before and give known ones their new key (re-onboarding);
    returns how many were added. A client is known by its organisation number."""
    assert integration.id is not None
    found = await db.exec(select(Client).where(col(Client.integration_id) == integration.id))
    known = {client.org_number: client for client in found.all()}
    added = 0
    for item in onboarded:
        org = "".join(item.org_number.split())
        client = known.get(org)
        if client is None:
            client = Client(
                integration_id=integration.id,
                erp_id=_erp_id(org, item.name),
                name="",
                sort_key="",
                search_text="",
                is_new=bool(known),
            )
            added += 1
        client_service.describe(client, item.name[:300] or org, org)
        client.key_ciphertext = vault.encrypt(item.client_key)
        client.access_lost = False
        client.updated_at = utcnow()
        db.add(client)
    return added


def _erp_id(org_number: str, name: str) -> int:
    """The client's number here: its organisation number (the system's own client id is a
    UUID), or for a company without one a stable number from its name."""
    if org_number.isdigit():
        return int(org_number)
    return int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)
