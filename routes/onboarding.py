"""Connecting a system by onboarding (PowerOffice Go): sending the browser to the system and
finishing when it redirects back (IntegrationController.onboarding_returned). Started from
Ny integrasjon, Endre system and Oppdater klientliste; the state that binds the redirect to
the user's session lives in the session, and so does the notice for the page after it."""

from __future__ import annotations

from dataclasses import dataclass, field

from litestar.response import Response, Template
from litestar_htmx import ClientRedirect, HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Integration
from routes.flash import set_flash
from services import clients as client_service
from services import integrations as integration_service
from services import onboarding
from services.audit import Actor
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.settings import Settings
from web.dependencies import wants_fragment

CALLBACK_PATH = "/integrasjoner/tilkobling"
SESSION_KEY = "onboarding"


async def begin(
    request: HTMXRequest,
    settings: Settings,
    connector: onboarding.OnboardingConnector,
    *,
    description: str,
    integration_id: int | None,
) -> Response:
    """Start an onboarding and send the browser to the system (raises InputError)."""
    base = settings.public_base_url or str(request.base_url).rstrip("/")
    pending, url = await onboarding.start(
        connector,
        description=description,
        integration_id=integration_id,
        callback_url=base + CALLBACK_PATH,
    )
    request.set_session({**(request.session or {}), SESSION_KEY: pending.to_session()})
    if wants_fragment(request):
        return ClientRedirect(url)
    # A plain form post may not redirect to another site (CSP form-action 'self'): a page
    # on ours sends the browser on.
    return Template(
        "pages/onboarding_redirect.html",
        context={"url": url, "name": connector.display_name},
    )


async def begin_again(
    request: HTMXRequest, settings: Settings, connectors: Connectors, integration: Integration
) -> Response | None:
    """Oppdater klientliste / Endre system of an onboarded integration: the onboarding again
    (raises InputError); None for an integration that is not onboarded."""
    connector = onboarding.onboarding_connector(connectors, integration.system)
    if connector is None or not integration_service.has_client_keys(integration):
        return None
    return await begin(
        request,
        settings,
        connector,
        description=integration.description,
        integration_id=integration.id,
    )


@dataclass(frozen=True)
class Outcome:
    """Where the browser goes after the system's redirect: an integration's page (the
    result or the error is flashed there), or back to Ny integrasjon with the error."""

    url: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    error: str = ""


async def finish(
    request: HTMXRequest,
    db: AsyncSession,
    actor: Actor,
    vault: KeyVault,
    connectors: Connectors,
    *,
    state: str,
    status: str,
    token: str,
) -> Outcome:
    """Finish the onboarding this session started, whatever the system's answer; what it
    stores is `actor`'s in the audit log."""
    session = dict(request.session or {})
    pending = onboarding.PendingOnboarding.from_session(session.get(SESSION_KEY))
    if pending is not None and onboarding.same_state(pending, state):
        # Single use, whatever the outcome. A redirect with another state (forged, or an
        # old one) leaves the onboarding under way alone.
        session.pop(SESSION_KEY)
        request.set_session(session)
    connector = onboarding.onboarding_connector(connectors, pending.system) if pending else None
    integration = None
    if pending is not None and pending.integration_id is not None:
        integration = await integration_service.get_integration(
            db, actor.office_id, pending.integration_id
        )
    try:
        if pending is None or connector is None:
            raise integration_service.InputError(onboarding.FIELD, NOT_STARTED_HERE)
        if pending.integration_id is not None and integration is None:
            raise integration_service.InputError(
                onboarding.FIELD, "Integrasjonen finnes ikke lenger. Ingenting er lagret."
            )
        one_time = onboarding.check_return(
            pending, connector, state=state, status=status, token=token
        )
        if integration is None:
            created = await onboarding.create_onboarded_integration(
                db,
                vault,
                connector,
                actor,
                raw_description=pending.description,
                token=one_time,
            )
            counts = await client_service.counts(db, created.id or 0)
            notice = _connected_notice(connector.display_name, counts.total)
            set_flash(request, notice=notice)
            return Outcome(url=f"/integrasjoner/{created.id}")
        result = await onboarding.reonboard(db, vault, connector, integration, actor, one_time)
        set_flash(request, notice=_reonboarded_notice(connector.display_name, result))
        return Outcome(url=f"/integrasjoner/{integration.id}")
    except integration_service.InputError as exc:
        if integration is not None:
            set_flash(request, error=exc.message)
            return Outcome(url=f"/integrasjoner/{integration.id}")
        values = {"description": pending.description, "system": pending.system} if pending else {}
        return Outcome(values=values, error=exc.message)


NOT_STARTED_HERE = (
    "Svaret fra regnskapssystemet hører ikke til en tilkobling som ble startet i denne "
    "nettleseren, "
    "eller tilkoblingen er allerede fullført. Ingenting er lagret. Start tilkoblingen på nytt."
)


def _clients(count: int) -> str:
    return "1 klient" if count == 1 else f"{count} klienter"


def _connected_notice(name: str, count: int) -> str:
    return (
        f"{_clients(count)} er koblet til fra {name}. Slå på AKTIV for klientene som skal "
        "synkroniseres (eller Aktiver alle)."
    )


def _reonboarded_notice(name: str, result: onboarding.Reonboarded) -> str:
    parts = []
    if result.added:
        parts.append("1 ny klient" if result.added == 1 else f"{result.added} nye klienter")
    if result.renewed:
        parts.append(f"{_clients(result.renewed)} fikk tilkoblingen fornyet")
    return f"Klientlisten er oppdatert fra {name}: " + ", ".join(parts) + "."
