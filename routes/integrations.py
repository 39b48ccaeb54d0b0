"""Integrations: the list, Ny integrasjon, Endre system, Slett system."""

from typing import Annotated

from litestar import Controller, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Response, Template
from litestar_htmx import ClientRedirect, HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Integration
from routes.flash import set_flash, take_flash
from routes.forms import Form, field
from routes.onboarding import begin as begin_onboarding
from routes.onboarding import begin_again
from routes.onboarding import finish as finish_onboarding
from routes.params import ID_GUARDS
from services import clients as client_service
from services import integrations as integration_service
from services import onboarding
from services.auth import CurrentUser
from services.change_events.subscriptions import subscriptions_of_integration, unsubscribe_all
from services.connectors.base import ConnectKind, SystemDescription
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.demo import DEMO_KEYS
from services.settings import Settings
from web.dependencies import wants_fragment


async def owned_integration(
    db: NamedDependency[AsyncSession],
    user: NamedDependency[CurrentUser],
    integration_id: FromPath[int],
) -> Integration:
    """The integration in the URL if it belongs to the user's office; 404 otherwise."""
    integration = await integration_service.get_integration(db, user.office_id, integration_id)
    if integration is None:
        raise NotFoundException()
    return integration


def redirect(request: HTMXRequest, url: str) -> Response:
    return ClientRedirect(url) if wants_fragment(request) else Redirect(url, status_code=303)


class IntegrationController(Controller):
    path = "/integrasjoner"
    guards = ID_GUARDS
    dependencies = {"integration": Provide(owned_integration)}

    @get("/")
    async def index(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
    ) -> Template:
        integrations = await integration_service.list_integrations(db, user.office_id)
        counts = await client_service.counts_by_integration(
            db, [i.id for i in integrations if i.id]
        )
        return Template(
            "pages/integrations.html",
            context={
                "user": user,
                "rows": [(i, counts.get(i.id or 0, client_service.Counts())) for i in integrations],
                **take_flash(request),
            },
        )

    @get("/ny")
    async def new(
        self, user: NamedDependency[CurrentUser], connectors: NamedDependency[Connectors]
    ) -> Template:
        return new_integration_page(user, connectors, values={}, errors={})

    @post("/ny", status_code=200)
    async def create(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        vault: NamedDependency[KeyVault],
        connectors: NamedDependency[Connectors],
        settings: NamedDependency[Settings],
        data: Form,
    ) -> Response:
        description = field(data, "description")
        values = {"description": description, "system": field(data, "system")}
        file_system = integration_service.chosen_file_system(connectors, values["system"])
        onboarded = onboarding.onboarding_connector(connectors, values["system"])
        try:
            if onboarded is not None:
                return await begin_onboarding(
                    request, settings, onboarded, description=description, integration_id=None
                )
            if file_system is not None:
                integration = await integration_service.create_file_integration(
                    db, file_system, office_id=user.office_id, raw_description=description
                )
            else:
                integration = await integration_service.create_integration(
                    db,
                    vault,
                    integration_service.chosen_key_system(connectors, values["system"]),
                    office_id=user.office_id,
                    raw_key=field(data, "key"),
                    raw_description=description,
                )
        except integration_service.InputError as exc:
            return _form_response(
                request,
                "pages/integration_new.html",
                user,
                connectors,
                values=values,
                errors={exc.field: exc.message},
            )
        if file_system is not None:
            set_flash(request, notice="Integrasjonen er opprettet. Last opp SAF-T-filene her.")
        else:
            total = (await client_service.counts(db, integration.id or 0)).total
            noun = "1 klient" if total == 1 else f"{total} klienter"
            set_flash(
                request,
                notice=f"Integrasjonen er opprettet med {noun}. Slå på AKTIV for klientene "
                "som skal synkroniseres (eller Aktiver alle).",
            )
        return redirect(request, f"/integrasjoner/{integration.id}")

    @get("/tilkobling")
    async def onboarding_returned(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        vault: NamedDependency[KeyVault],
        connectors: NamedDependency[Connectors],
        returned_state: Annotated[str, QueryParameter(name="state", max_length=200)] = "",
        status: Annotated[str, QueryParameter(max_length=100)] = "",
        token: Annotated[str, QueryParameter(max_length=4000)] = "",
    ) -> Response:
        """Where an onboarding system sends the browser back (CALLBACK_PATH)."""
        outcome = await finish_onboarding(
            request,
            db,
            user.office_id,
            vault,
            connectors,
            state=returned_state,
            status=status,
            token=token,
        )
        if outcome.url is not None:
            return Redirect(outcome.url, status_code=303)
        return new_integration_page(
            user, connectors, values=outcome.values, errors={onboarding.FIELD: outcome.error}
        )

    @get("/{integration_id:int}/endre")
    async def edit(
        self,
        user: NamedDependency[CurrentUser],
        connectors: NamedDependency[Connectors],
        integration: NamedDependency[Integration],
    ) -> Template:
        return _form_page(
            "pages/integration_edit.html",
            user,
            connectors,
            values={"description": integration.description},
            errors={},
            integration=integration,
        )

    @post("/{integration_id:int}/endre", status_code=200)
    async def update(
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
        description = field(data, "description")
        try:
            if integration_service.takes_files(integration) or integration_service.has_client_keys(
                integration
            ):
                # No key to change: the description, and an onboarded system's clients again.
                await integration_service.change_description(
                    db, integration, raw_description=description
                )
                again = field(data, "action") == "reonboard" and await begin_again(
                    request, settings, connectors, integration
                )
                if again:
                    return again
            else:
                await integration_service.change_system(
                    db,
                    vault,
                    integration_service.connector_of(connectors, integration),
                    integration,
                    raw_key=field(data, "key"),
                    raw_description=description,
                )
        except integration_service.InputError as exc:
            return _form_response(
                request,
                "pages/integration_edit.html",
                user,
                connectors,
                values={"description": description},
                errors={exc.field: exc.message},
                integration=integration,
            )
        set_flash(request, notice="Endringene er lagret.")
        return redirect(request, f"/integrasjoner/{integration.id}")

    @get("/{integration_id:int}/slett")
    async def confirm_delete(
        self,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        integration: NamedDependency[Integration],
    ) -> Template:
        return Template(
            "pages/integration_delete.html",
            context={
                "user": user,
                "integration": integration,
                "counts": await client_service.counts(db, integration.id or 0),
            },
        )

    @post("/{integration_id:int}/slett", status_code=200)
    async def delete(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        integration: NamedDependency[Integration],
        vault: NamedDependency[KeyVault],
        connectors: NamedDependency[Connectors],
    ) -> Response:
        # Noted while the key is still known, removed at the ERP after the answer.
        subscriptions = await subscriptions_of_integration(db, integration)
        key = vault.decrypt(integration.key_ciphertext) if subscriptions else ""
        name = integration_service.display_name(
            integration, connectors.describe(integration.system).display_name
        )
        await integration_service.delete_integration(db, integration)
        set_flash(request, notice=f"«{name}» er slettet, med klientene og innstillingene deres.")
        response = redirect(request, "/integrasjoner")
        connector = connectors.get(integration.system)
        if subscriptions and connector is not None:  # none here: its callbacks get 404s
            response.background = BackgroundTask(unsubscribe_all, connector, key, subscriptions)
        return response


def new_integration_page(
    user: CurrentUser, connectors: Connectors, *, values: dict[str, str], errors: dict[str, str]
) -> Template:
    """Ny integrasjon, also where a failed onboarding lands (with its error)."""
    return _form_page(
        "pages/integration_new.html",
        user,
        connectors,
        values=values,
        errors=errors,
        status_code=422 if errors else 200,
    )


def _form_page(
    template: str,
    user: CurrentUser,
    connectors: Connectors,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    integration: Integration | None = None,
    status_code: int = 200,
) -> Template:
    key_systems = connectors.connectable_by(ConnectKind.KEY)
    onboarding_systems = connectors.connectable_by(ConnectKind.ONBOARDING)
    if integration is not None:
        selected: SystemDescription | None = connectors.describe(integration.system)
    else:
        chosen = values.get("system", "")
        selected = (
            connectors.get(chosen)
            or connectors.file_system(chosen)
            or next(iter(key_systems), None)
        )
    return Template(
        template,
        context={
            "user": user,
            "values": values,
            "errors": errors,
            "integration": integration,
            "demo_keys": DEMO_KEYS,
            "key_systems": key_systems,
            "onboarding_systems": onboarding_systems,
            "planned_systems": connectors.planned(),
            "file_systems": connectors.file_systems(),
            "selected": selected,
        },
        status_code=status_code,
    )


def _form_response(
    request: HTMXRequest,
    page: str,
    user: CurrentUser,
    connectors: Connectors,
    *,
    values: dict[str, str],
    errors: dict[str, str],
    integration: Integration | None = None,
) -> Template:
    # The key is never sent back: the accountant pastes it again.
    template = "partials/integration_form.html" if wants_fragment(request) else page
    return _form_page(
        template,
        user,
        connectors,
        values=values,
        errors=errors,
        integration=integration,
        status_code=422,
    )
