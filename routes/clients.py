"""An integration's page: the client table, its search, sorting, switches and bulk actions."""

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template
from litestar_htmx import HTMXRequest, HTMXTemplate
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Integration
from routes.auth import client_address
from routes.flash import set_flash, take_flash
from routes.forms import Form, field
from routes.integrations import owned_integration, redirect
from routes.onboarding import begin_again
from routes.params import ID_GUARDS, Offset
from services import audit
from services import clients as client_service
from services import integrations as integration_service
from services.auth import CurrentUser
from services.clients import ClientPage, ClientQuery, Switch
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.saft import history as saft_history
from services.settings import Settings
from web.dependencies import Services, wants_fragment
from web.guards import ACCOUNTANT, READER

SWITCHES = {s.value for s in Switch}
# Switches of a system data is fetched from; an integration that takes files has none.
FETCH_ONLY = {Switch.ACTIVE.value, Switch.FULL_SYNC.value}
# The templates that show the Aktive/Inaktive counts.
WITH_COUNTS = {"pages/integration.html", "partials/client_section.html"}


class ClientController(Controller):
    path = "/integrasjoner/{integration_id:int}"
    guards = ID_GUARDS
    opt = READER
    dependencies = {"integration": Provide(owned_integration)}

    @get("/")
    async def page(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        integration: NamedDependency[Integration],
        q: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        offset: Offset = 0,
        status: FromQuery[str | None] = None,
    ) -> Template:
        query = ClientQuery.parse(q, sort, offset, status)
        if wants_fragment(request):
            # Search and sorting replace only the table.
            return await _render(db, "partials/client_table.html", integration, query)
        return await _render(
            db, "pages/integration.html", integration, query, user=user, **take_flash(request)
        )

    @get("/klienter")
    async def more_rows(
        self,
        db: NamedDependency[AsyncSession],
        integration: NamedDependency[Integration],
        q: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        offset: Offset = 0,
        status: FromQuery[str | None] = None,
    ) -> Template:
        """The next page of rows, fetched as the last row scrolls into view."""
        query = ClientQuery.parse(q, sort, offset, status)
        return await _render(db, "partials/client_rows.html", integration, query)

    @get("/klienter/{client_id:int}")
    async def row(
        self,
        db: NamedDependency[AsyncSession],
        integration: NamedDependency[Integration],
        client_id: FromPath[int],
    ) -> Template:
        """One row, polled while its client syncs so progress shows without a reload."""
        assert integration.id is not None
        client = await client_service.get_client(db, integration.id, client_id)
        if client is None:
            raise NotFoundException()
        return Template(
            "partials/client_row.html", context={"integration": integration, "client": client}
        )

    @post("/klienter/{client_id:int}/{switch:str}", status_code=200, opt=ACCOUNTANT)
    async def set_switch(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        connectors: NamedDependency[Connectors],
        integration: NamedDependency[Integration],
        client_id: FromPath[int],
        switch: FromPath[str],
        data: Form,
    ) -> Response:
        assert integration.id is not None
        client = await client_service.get_client(db, integration.id, client_id)
        if client is None or switch not in SWITCHES:
            raise NotFoundException()
        if switch in FETCH_ONLY:
            _not_for_files(integration)
        on = field(data, "on") == "true"
        if on and switch == Switch.ACTIVE and client.access_lost:
            on = False  # a client the key no longer reaches cannot be activated
        actor = audit.actor_of(user, client_address(request))
        name = _display_name(connectors, integration)
        await client_service.set_switch(db, client, Switch(switch), on, actor, integration=name)
        if field(data, "neste") == "oversikt":  # from the client's own page: back there
            if switch == Switch.ACTIVE and on:
                set_flash(request, notice="Klienten er aktivert og synkroniseres nå.")
            return redirect(
                request, f"/integrasjoner/{integration.id}/klienter/{client.id}/oversikt"
            )
        if not wants_fragment(request):
            return redirect(request, f"/integrasjoner/{integration.id}")
        # The table's form made the request; the answer replaces the switch's row.
        return HTMXTemplate(
            template_name="partials/client_row_update.html",
            context={
                "integration": integration,
                "client": client,
                "counts": await client_service.counts(db, integration.id),
            },
            re_target=f"#client-{client.id}",
            re_swap="outerHTML",
        )

    @post("/klienter/{client_id:int}/sjekk", status_code=200, opt=ACCOUNTANT)
    async def check_access(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        services: NamedDependency[Services],
        connectors: NamedDependency[Connectors],
        integration: NamedDependency[Integration],
        client_id: FromPath[int],
    ) -> Response:
        """Sjekk tilgang på nytt: sync the client at the next tick instead of hours later."""
        _not_for_files(integration)
        assert integration.id is not None
        client = await client_service.get_client(db, integration.id, client_id)
        if client is None:
            raise NotFoundException()
        actor = audit.actor_of(user, client_address(request))
        name = _display_name(connectors, integration)
        await client_service.check_access_now(db, client, actor, integration=name)
        if services.sync_runner is not None:
            services.sync_runner.wake()
        set_flash(
            request,
            notice="Tilgangen sjekkes nå. Oppdater siden om litt for å se svaret.",
        )
        return redirect(request, _client_page(integration, client.id))

    @post("/oppdater", status_code=200, opt=ACCOUNTANT)
    async def refresh(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        vault: NamedDependency[KeyVault],
        connectors: NamedDependency[Connectors],
        integration: NamedDependency[Integration],
        settings: NamedDependency[Settings],
        data: Form,
    ) -> Response:
        """Oppdater klientliste: asks the system (a key's clients), or runs the onboarding
        again for systems whose clients are approved there."""
        _not_for_files(integration)
        try:
            if again := await begin_again(request, settings, connectors, integration):
                return again
            result = await integration_service.refresh_clients(
                db,
                vault,
                integration_service.connector_of(connectors, integration),
                integration,
                audit.actor_of(user, client_address(request)),
            )
        except integration_service.InputError as exc:
            return await _after_action(request, db, integration, data, error=exc.message)
        new_ones = (
            (f"/integrasjoner/{integration.id}?status=ny", "Vis de nye klientene")
            if result.added
            else None
        )
        return await _after_action(
            request, db, integration, data, notice=_refresh_notice(result), link=new_ones
        )

    @post("/aktiver-alle", status_code=200, opt=ACCOUNTANT)
    async def activate_all(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        connectors: NamedDependency[Connectors],
        integration: NamedDependency[Integration],
        data: Form,
    ) -> Response:
        actor = audit.actor_of(user, client_address(request))
        return await _set_all_active(request, db, connectors, integration, data, actor, on=True)

    @post("/deaktiver-alle", status_code=200, opt=ACCOUNTANT)
    async def deactivate_all(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        connectors: NamedDependency[Connectors],
        integration: NamedDependency[Integration],
        data: Form,
    ) -> Response:
        actor = audit.actor_of(user, client_address(request))
        return await _set_all_active(request, db, connectors, integration, data, actor, on=False)


def _client_page(integration: Integration, client_id: int | None) -> str:
    return f"/integrasjoner/{integration.id}/klienter/{client_id}/oversikt"


def _not_for_files(integration: Integration) -> None:
    """Client lists and activation belong to systems data is fetched from: an integration
    that takes files gets its clients from the files."""
    if integration_service.takes_files(integration):
        raise NotFoundException()


def _audit_target(connectors: Connectors, integration: Integration) -> str:
    system = connectors.describe(integration.system)
    return integration_service.audit_target(integration, system.display_name)


def _display_name(connectors: Connectors, integration: Integration) -> str:
    system = connectors.describe(integration.system)
    return integration_service.display_name(integration, system.display_name)


async def _set_all_active(
    request: HTMXRequest,
    db: AsyncSession,
    connectors: Connectors,
    integration: Integration,
    data: Form,
    actor: audit.Actor,
    *,
    on: bool,
) -> Response:
    _not_for_files(integration)
    assert integration.id is not None
    query = ClientQuery.parse(field(data, "q"), field(data, "sort"), 0, field(data, "status"))
    changed = await client_service.set_all_active(
        db,
        integration.id,
        on,
        query,
        actor,
        target=_audit_target(connectors, integration),
        integration=_display_name(connectors, integration),
    )
    noun = "klient" if changed == 1 else "klienter"
    notice = f"{changed} {noun} {'aktivert' if on else 'deaktivert'}"
    if query.text or query.status:
        notice += " (av klientene som vises)"
    return await _after_action(request, db, integration, data, notice=notice + ".")


def _refresh_notice(result: integration_service.RefreshResult) -> str:
    parts = []
    if result.added:
        parts.append("1 ny klient" if result.added == 1 else f"{result.added} nye klienter")
    if result.regained:
        parts.append(f"{result.regained} har fått tilgang igjen")
    if result.lost:
        parts.append(f"{result.lost} kan ikke lenger nås med nøkkelen")
    return "Klientlisten er oppdatert: " + (", ".join(parts) if parts else "ingen endringer") + "."


async def _after_action(
    request: HTMXRequest,
    db: AsyncSession,
    integration: Integration,
    data: Form,
    *,
    notice: str | None = None,
    error: str | None = None,
    link: tuple[str, str] | None = None,
) -> Response:
    if not wants_fragment(request):
        return redirect(request, f"/integrasjoner/{integration.id}")
    query = ClientQuery.parse(field(data, "q"), field(data, "sort"), 0, field(data, "status"))
    return await _render(
        db,
        "partials/client_section.html",
        integration,
        query,
        notice=notice,
        error=error,
        notice_link=link,
    )


async def _render(
    db: AsyncSession,
    template: str,
    integration: Integration,
    query: ClientQuery,
    **extra: object,
) -> Template:
    assert integration.id is not None
    context: dict[str, object] = {
        "integration": integration,
        "page": await client_service.list_clients(db, integration.id, query),
        "status_labels": client_service.STATUS_LABELS,
        **extra,
    }
    if template in WITH_COUNTS:  # not for every search keystroke or scrolled page
        context["counts"] = await client_service.counts(db, integration.id)
    if integration_service.takes_files(integration):
        page: ClientPage = context["page"]  # type: ignore[assignment]
        ids = [c.id for c in page.clients if c.id is not None]
        context["latest_imports"] = await saft_history.latest_imports(db, ids)
        if template in WITH_COUNTS:
            imports = await saft_history.imports_of_integration(db, integration.id)
            context["imports"] = imports
            context["import_findings"] = await saft_history.finding_counts(
                db, [i.id for i in imports if i.id is not None]
            )
    return Template(template, context=context)
