"""Integrations: the list, Ny integrasjon, Endre system, Slett system."""

import time
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
from routes.auth import client_address
from routes.flash import set_flash, take_flash
from routes.forms import Form, field
from routes.onboarding import begin as begin_onboarding
from routes.onboarding import begin_again
from routes.onboarding import finish as finish_onboarding
from routes.params import ID_GUARDS
from services import audit, onboarding
from services import clients as client_service
from services import integrations as integration_service
from services.auth import CurrentUser
from services.change_events.subscriptions import subscriptions_of_integration, unsubscribe_all
from services.connectors.base import ConnectKind, SystemDescription
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.demo import DEMO_KEYS
from services.settings import Settings
from web.dependencies import wants_fragment
from web.guards import ACCOUNTANT, ADMINISTRATOR, READER


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
    opt = READER
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
                "attention": await client_service.attention_count(db, user.office_id),
                **take_flash(request),
            },
        )

    @get("/ny", opt=ADMINISTRATOR)
    async def new(
        self, user: NamedDependency[CurrentUser], connectors: NamedDependency[Connectors]
    ) -> Template:
        return new_integration_page(user, connectors, values={}, errors={})

    @post("/ny", status_code=200, opt=ADMINISTRATOR)
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
        actor = audit.actor_of(user, client_address(request))
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
                    db, file_system, actor, raw_description=description
                )
            else:
                # A refused form keeps the key as typed (issue 19: Tripletex shows a new key
                # only once). It goes back in that one answer's password field, nowhere else.
                values["key"] = field(data, "key")
                integration = await integration_service.create_integration(
                    db,
                    vault,
                    integration_service.chosen_key_system(connectors, values["system"]),
                    actor,
                    raw_key=values["key"],
                    raw_description=description,
                    same_key_as=_id_or_none(field(data, "same_key_as")),
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
        except integration_service.SameKeyInUse as exc:
            # Refused until the accountant confirms: a second integration with the same key
            # is almost always a mistake (the same clients synced twice on one rate limit),
            # but not always (a copy kept apart on purpose), so "Opprett likevel" is offered.
            return _form_response(
                request,
                "pages/integration_new.html",
                user,
                connectors,
                values=values,
                errors={},
                same_key=exc.existing,
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

    @get("/tilkobling", opt=ACCOUNTANT)
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
            audit.actor_of(user, client_address(request)),
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

    @get("/{integration_id:int}/endre", opt=ADMINISTRATOR)
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

    @post("/{integration_id:int}/endre", status_code=200, opt=ADMINISTRATOR)
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
        actor = audit.actor_of(user, client_address(request))
        try:
            if integration_service.takes_files(integration) or integration_service.has_client_keys(
                integration
            ):
                # No key to change: the description, and an onboarded system's clients again.
                await integration_service.change_description(
                    db,
                    integration,
                    actor,
                    connectors.describe(integration.system),
                    raw_description=description,
                )
                again = field(data, "action") == "reonboard" and await begin_again(
                    request, settings, connectors, integration
                )
                if again:
                    return again
            else:
                raw_key = field(data, "key")
                # "Lagre likevel" for the key waiting in the session; a key typed meanwhile
                # is a new one, checked (and asked about) anew.
                typed = integration_service.clean_key(raw_key)
                confirmed = field(data, "confirm") == "key" and not typed
                if confirmed:
                    raw_key = _take_pending_key(request, vault, integration)
                    if not raw_key:
                        raise integration_service.InputError(
                            "key",
                            "Den nye nøkkelen er ikke husket lenger. Fyll den inn på nytt.",
                        )
                try:
                    await integration_service.change_system(
                        db,
                        vault,
                        integration_service.connector_of(connectors, integration),
                        integration,
                        actor,
                        raw_key=raw_key,
                        raw_description=description,
                        confirmed=confirmed,
                    )
                except integration_service.KeyReachesFewer as ask:
                    _keep_pending_key(request, vault, integration, raw_key)
                    return _form_response(
                        request,
                        "pages/integration_edit.html",
                        user,
                        connectors,
                        values={"description": description},
                        errors={},
                        integration=integration,
                        key_reach=ask.reach,
                    )
        except integration_service.InputError as exc:
            _forget_pending_key(request)
            return _form_response(
                request,
                "pages/integration_edit.html",
                user,
                connectors,
                values={"description": description},
                errors={exc.field: exc.message},
                integration=integration,
            )
        _forget_pending_key(request)
        set_flash(request, notice="Endringene er lagret.")
        return redirect(request, f"/integrasjoner/{integration.id}")

    @get("/{integration_id:int}/slett", opt=ADMINISTRATOR)
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

    @post("/{integration_id:int}/slett", status_code=200, opt=ADMINISTRATOR)
    async def delete(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        integration: NamedDependency[Integration],
        vault: NamedDependency[KeyVault],
        connectors: NamedDependency[Connectors],
    ) -> Response:
        # Noted while the key is still known, removed at the ERP after the answer.
        subscriptions = await subscriptions_of_integration(db, integration)
        key = vault.decrypt(integration.key_ciphertext) if subscriptions else ""
        system = connectors.describe(integration.system)
        name = integration_service.display_name(integration, system.display_name)
        actor = audit.actor_of(user, client_address(request))
        await integration_service.delete_integration(db, integration, actor, system)
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
    same_key: Integration | None = None,
    key_reach: integration_service.KeyReach | None = None,
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
            "same_key": same_key,
            "key_reach": key_reach,
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
    same_key: Integration | None = None,
    key_reach: integration_service.KeyReach | None = None,
) -> Template:
    """The form again: refused (422), or asking before a key is saved (Endre system, 200).
    Ny integrasjon gives the typed key back in `values`; Endre system never does."""
    if not wants_fragment(request):
        template = page
    elif key_reach is not None:
        template = "partials/integration_key_confirm.html"
    else:
        template = "partials/integration_form.html"
    return _form_page(
        template,
        user,
        connectors,
        values=values,
        errors=errors,
        integration=integration,
        status_code=200 if key_reach is not None else 422,
        same_key=same_key,
        key_reach=key_reach,
    )


# Endre system: a new key that some clients would lose access with waits for the
# accountant's "Lagre likevel" here, in the server-side session (the browser holds only the
# session's id), encrypted with the KeyVault like a saved key and tied to the integration.
# Not sent back to the browser: a key in the page could be read by anything that reads the
# page (extensions, a screenshot, the back-forward cache), and asking for it again would
# fail the accountant whose system shows a new key only once.
PENDING_KEY = "pending_key"
PENDING_KEY_SECONDS = 15 * 60


def _keep_pending_key(
    request: HTMXRequest, vault: KeyVault, integration: Integration, raw_key: str
) -> None:
    pending = {
        "integration_id": integration.id,
        "key": vault.encrypt(integration_service.clean_key(raw_key)),
        "at": int(time.time()),
    }
    request.set_session({**(request.session or {}), PENDING_KEY: pending})


def _take_pending_key(request: HTMXRequest, vault: KeyVault, integration: Integration) -> str:
    """The key waiting for this integration's confirmation ("" if none, or too old); it is
    forgotten either way."""
    session = dict(request.session or {})
    pending = session.pop(PENDING_KEY, None)
    if pending is None:
        return ""
    request.set_session(session)
    if (
        not isinstance(pending, dict)
        or pending.get("integration_id") != integration.id
        or not isinstance(pending.get("at"), int)
        or time.time() - pending["at"] > PENDING_KEY_SECONDS
    ):
        return ""
    try:
        return vault.decrypt(str(pending.get("key", "")))
    except ValueError:  # encryption keys rotated meanwhile
        return ""


def _forget_pending_key(request: HTMXRequest) -> None:
    if PENDING_KEY in (request.session or {}):
        request.set_session({k: v for k, v in request.session.items() if k != PENDING_KEY})


def _id_or_none(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None
