"""An account's postings for a period: the drill-down from the saldobalanse to the hovedbok,
fetched from the client's system on demand, or for a SAF-T client read from the imported
files' lines (services.postings)."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration
from routes.client_page import owned_client
from routes.integrations import owned_integration
from routes.params import ID_GUARDS
from services import balances
from services import integrations as integration_service
from services import postings as posting_service
from services.auth import CurrentUser
from services.connectors.base import (
    AccessDenied,
    CompanyRef,
    ErpError,
    KeyRejected,
    RateLimited,
    ReportsPostings,
    Wording,
)
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.saft import history as saft_history
from services.settings import Settings
from web.guards import READER

FRAGMENT_ID = "postings"
CACHE_STATE = "postings_cache"  # the app's PostingsCache, made at the first drill-down


class PostingsController(Controller):
    path = "/integrasjoner/{integration_id:int}/klienter/{client_id:int}/konto/{number:int}"
    guards = ID_GUARDS
    opt = READER
    dependencies = {"integration": Provide(owned_integration)}

    @get("/")
    async def page(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        settings: NamedDependency[Settings],
        vault: NamedDependency[KeyVault],
        connectors: NamedDependency[Connectors],
        integration: NamedDependency[Integration],
        client_id: FromPath[int],
        number: FromPath[int],
        aar: FromQuery[str | None] = None,
        fra: FromQuery[str | None] = None,
        til: FromQuery[str | None] = None,
    ) -> Template:
        client = await owned_client(db, integration, client_id)
        assert client.id is not None
        names = await balances.account_names(db, client.id)
        if number not in names:
            raise NotFoundException()
        imported = integration_service.takes_files(integration)
        client_url = f"/integrasjoner/{integration.id}/klienter/{client.id}/oversikt"
        context: dict[str, object] = {
            "user": user,
            "integration": integration,
            "client": client,
            "number": number,
            "account_name": names[number],
            "fragment_id": FRAGMENT_ID,
            "kr": balances.format_amount,
            "imported": imported,
            "period": None,
            "period_error": None,
            "error": None,
            "result": None,
            "back": client_url,
            "system_name": _system_name(connectors, integration),
        }
        status = 200
        period = await _period(db, settings, client, aar, fra, til, imported=imported)
        if isinstance(period, str):
            context["period_error"] = period
            status = 400
        else:
            context["period"] = period
            shown = {"aar": period.year, "fra": period.first_month, "til": period.last_month}
            context["back"] = f"{client_url}?{urlencode(shown)}"
            if imported:
                context["result"] = await posting_service.imported_postings(
                    db, client.id, number, period
                )
            else:
                status = await _fetch(
                    request, db, vault, connectors, integration, client, number, period, context
                )
        if request.htmx and request.htmx.target == FRAGMENT_ID:
            # htmx (base.html) swaps 422 but not other 4xx/5xx: the message still shows.
            return Template(
                "partials/postings.html",
                context=context,
                status_code=200 if status == 200 else 422,
            )
        return Template("pages/postings.html", context=context, status_code=status)


def _wording(connector: object) -> str:
    """What the system's own wording says to do about missing access."""
    wording = getattr(connector, "wording", None)
    return wording.no_api_access if isinstance(wording, Wording) else ""


def _system_name(connectors: Connectors, integration: Integration) -> str:
    try:
        return connectors.describe(integration.system).display_name
    except KeyError:
        return "regnskapssystemet"


async def _period(
    db: AsyncSession,
    settings: Settings,
    client: Client,
    year: str | None,
    first_month: str | None,
    last_month: str | None,
    *,
    imported: bool,
) -> balances.Period | str:
    """The period asked for, as the client page reads it; a string says what is wrong."""
    assert client.id is not None
    if client.synced_at is None:
        return "Klienten har ingen data ennå."
    if imported:
        offer = await saft_history.offer(db, client.id)
    else:
        offer = balances.offer(client.synced_at, settings.sync.years)
    try:
        return balances.parse_period(
            year, first_month, last_month, years=offer.years, default=offer.default
        )
    except balances.PeriodError as exc:
        return exc.message


async def _fetch(
    request: HTMXRequest,
    db: AsyncSession,
    vault: KeyVault,
    connectors: Connectors,
    integration: Integration,
    client: Client,
    number: int,
    period: balances.Period,
    context: dict[str, object],
) -> int:
    """Fill in the postings, or the error the system gave; the status to answer with."""
    assert client.id is not None
    name = context["system_name"]
    connector = connectors.get(integration.system)
    if not isinstance(connector, ReportsPostings):
        context["error"] = f"Posteringer kan ikke hentes fra {name} ennå."
        return 200
    cache = request.app.state.get(CACHE_STATE)
    if cache is None:
        cache = posting_service.PostingsCache()
        request.app.state[CACHE_STATE] = cache
    try:
        context["result"] = await posting_service.account_postings(
            db,
            cache,
            connector,
            integration_service.key_of(vault, integration, client),
            CompanyRef.of(client.erp_id, integration.key_kind),
            client.id,
            number,
            period,
        )
    except AccessDenied:
        context["error"] = f"Ingen tilgang til klienten i {name}. {_wording(connector)}"
        return 502
    except KeyRejected:
        context["error"] = f"Nøkkelen ble avvist av {name}. Sjekk nøkkelen under integrasjonen."
        return 502
    except RateLimited:
        context["error"] = f"{name} ba oss vente (for mange forespørsler). Prøv igjen om litt."
        return 503
    except ErpError:
        context["error"] = f"{name} svarte ikke som det skulle. Prøv igjen om litt."
        return 502
    return 200
