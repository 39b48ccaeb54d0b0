"""The saldobalanse to take away: Excel, CSV and a print view for one client, and one Excel
workbook for all of an integration's clients (services/exports.py makes them)."""

from __future__ import annotations

from urllib.parse import urlencode

from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery
from litestar.response import Stream, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Integration
from routes.client_page import owned_client
from routes.integrations import owned_integration
from routes.params import ID_GUARDS
from services import balances, exports
from services.auth import CurrentUser
from services.connectors.registry import Connectors
from services.integrations import display_name
from services.settings import Settings
from web.dependencies import wants_fragment
from web.guards import READER


class ExportController(Controller):
    path = "/integrasjoner/{integration_id:int}"
    guards = ID_GUARDS
    opt = READER
    dependencies = {"integration": Provide(owned_integration)}

    @get("/klienter/{client_id:int}/saldobalanse.xlsx")
    async def client_xlsx(
        self,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        settings: NamedDependency[Settings],
        integration: NamedDependency[Integration],
        client_id: FromPath[int],
        aar: FromQuery[str | None] = None,
        fra: FromQuery[str | None] = None,
        til: FromQuery[str | None] = None,
    ) -> Response:
        export = await _client_export(db, user, settings, integration, client_id, aar, fra, til)
        if isinstance(export, Template):
            return export
        file = await exports.client_workbook(export)
        return Stream(
            exports.chunks(file),
            media_type=exports.XLSX,
            headers=_attachment(exports.client_file_name(export.heading, "xlsx")),
        )

    @get("/klienter/{client_id:int}/saldobalanse.csv")
    async def client_csv(
        self,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        settings: NamedDependency[Settings],
        integration: NamedDependency[Integration],
        client_id: FromPath[int],
        aar: FromQuery[str | None] = None,
        fra: FromQuery[str | None] = None,
        til: FromQuery[str | None] = None,
    ) -> Response:
        export = await _client_export(db, user, settings, integration, client_id, aar, fra, til)
        if isinstance(export, Template):
            return export
        return Response(
            content=exports.client_csv(export),
            media_type=exports.CSV,
            headers=_attachment(exports.client_file_name(export.heading, "csv")),
        )

    @get("/klienter/{client_id:int}/saldobalanse/utskrift")
    async def client_print(
        self,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        settings: NamedDependency[Settings],
        integration: NamedDependency[Integration],
        client_id: FromPath[int],
        aar: FromQuery[str | None] = None,
        fra: FromQuery[str | None] = None,
        til: FromQuery[str | None] = None,
    ) -> Response:
        export = await _client_export(db, user, settings, integration, client_id, aar, fra, til)
        if isinstance(export, Template):
            return export
        return Template(
            "pages/saldobalanse_print.html",
            context={
                "user": user,
                "heading": export.heading,
                "report": export.report,
                "structure": balances.structure(export.report),
                "kr": balances.format_amount,
                "months": balances.MONTHS,
                "unknown_account": exports.UNKNOWN_ACCOUNT,
                "back": _client_url(integration.id, client_id, aar, fra, til),
            },
        )

    @get("/saldobalanse")
    async def integration_form(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        settings: NamedDependency[Settings],
        integration: NamedDependency[Integration],
    ) -> Template:
        """The form for all clients' saldobalanse: the integration page loads it into
        partials/integration_exports.html (htmx); without JavaScript, a page of its own."""
        offer = (await exports.integration_offer(db, integration, settings.sync.years)).offer
        context = _form_context(integration, offer, None, offer.default if offer else None)
        if wants_fragment(request):
            return Template("partials/integration_exports.html", context=context)
        return Template("pages/integration_exports.html", context={**context, "user": user})

    @get("/saldobalanse.xlsx")
    async def integration_xlsx(
        self,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        settings: NamedDependency[Settings],
        connectors: NamedDependency[Connectors],
        integration: NamedDependency[Integration],
        aar: FromQuery[str | None] = None,
        fra: FromQuery[str | None] = None,
        til: FromQuery[str | None] = None,
    ) -> Response:
        """One workbook: an overview and a sheet per client with data for the period."""
        try:
            plan = await exports.integration_plan(
                db, integration, settings.sync.years, aar, fra, til
            )
        except balances.PeriodError as exc:
            offer = (await exports.integration_offer(db, integration, settings.sync.years)).offer
            shown = balances.Period(
                _number(aar, offer.default.year if offer else 0),
                _number(fra, offer.default.first_month if offer else 1),
                _number(til, offer.default.last_month if offer else 12),
            )
            context = _form_context(integration, offer, exc.message, shown)
            return Template(
                "pages/integration_exports.html", context={**context, "user": user}, status_code=400
            )
        label = display_name(integration, connectors.describe(integration.system).display_name)
        file = await exports.integration_workbook(db, user.office_name, label, plan)
        return Stream(
            exports.chunks(file),
            media_type=exports.XLSX,
            headers=_attachment(exports.integration_file_name(integration, plan.period)),
        )


async def _client_export(
    db: AsyncSession,
    user: CurrentUser,
    settings: Settings,
    integration: Integration,
    client_id: int,
    aar: str | None,
    fra: str | None,
    til: str | None,
) -> exports.ClientExport | Template:
    """The client's saldobalanse for the period asked for, or the page saying in Norwegian
    what is wrong with the period (400), with the way back to the client page."""
    client = await owned_client(db, integration, client_id)
    try:
        return await exports.client_export(
            db, user.office_name, integration, client, settings.sync.years, aar, fra, til
        )
    except balances.PeriodError as exc:
        return Template(
            "pages/export_error.html",
            context={
                "user": user,
                "message": exc.message,
                "back": _client_url(integration.id, client_id, aar, fra, til),
            },
            status_code=400,
        )


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": exports.content_disposition(name)}


def _client_url(
    integration_id: int | None,
    client_id: int,
    aar: str | None,
    fra: str | None,
    til: str | None,
) -> str:
    """The client page with the period asked for (a refused one shows its error there)."""
    url = f"/integrasjoner/{integration_id}/klienter/{client_id}/oversikt"
    query = urlencode([(k, v) for k, v in (("aar", aar), ("fra", fra), ("til", til)) if v])
    return f"{url}?{query}" if query else url


def _form_context(
    integration: Integration,
    offer: balances.Offer | None,
    error: str | None,
    shown: balances.Period | None,
) -> dict[str, object]:
    return {
        "integration": integration,
        "export_years": offer.years if offer else [],
        "export_period": shown,
        "export_error": error,
        "months": list(enumerate(balances.MONTHS, start=1)),
    }


def _number(raw: str | None, fallback: int) -> int:
    text = (raw or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 4 else fallback
