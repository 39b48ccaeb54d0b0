"""Innstillinger → Pålogging (administrators): the office's OpenID Provider, its rules, and
Test tilkobling."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.response import Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models.office import Role
from routes.auth import client_address
from routes.forms import Form, field
from routes.sso import redirect_uri
from services import oidc, signin_settings
from services.audit import actor_of
from services.auth import CurrentUser
from services.outbound_guard import OutboundPolicy
from services.signin_settings import SigninForm
from web.dependencies import Services, wants_fragment
from web.guards import ADMINISTRATOR

PAGE = "/innstillinger/palogging"
CHECKBOXES = ("enabled", "create_users", "sso_required", "totp_required")


class SigninSettingsController(Controller):
    path = PAGE
    opt = ADMINISTRATOR
    include_in_schema = False

    @get("/")
    async def index(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        services: NamedDependency[Services],
    ) -> Template:
        return await _page(request, db, user, services)

    @post("/", status_code=200)
    async def save(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        services: NamedDependency[Services],
        data: Form,
    ) -> Template:
        form = _form(data)
        environment = await _environment(db, user, services)
        try:
            changed = await signin_settings.save(
                db,
                services.vault,
                actor_of(user, client_address(request)),
                form,
                policy=OutboundPolicy.from_settings(services.settings),
                environment=environment,
            )
        except signin_settings.SigninInputError as exc:
            return await _page(
                request, db, user, services, form=form, errors=exc.errors, status_code=422
            )
        notice = "Endringene er lagret." if changed else "Ingen endringer å lagre."
        return await _page(request, db, user, services, notice=notice)

    @post("/test", status_code=200)
    async def test(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        services: NamedDependency[Services],
        data: Form,
    ) -> Template:
        """Test tilkobling: discovery and keys for the issuer in the form (not saved)."""
        form = _form(data)
        environment = await _environment(db, user, services)
        issuer = environment.issuer if environment else form.issuer
        try:
            found = await signin_settings.test_connection(
                services.guarded, issuer, OutboundPolicy.from_settings(services.settings)
            )
        except signin_settings.TestFailed as exc:
            return await _tested(request, db, user, services, form, test_failure=exc.message)
        return await _tested(request, db, user, services, form, found=found)


def _form(data: dict[str, Any]) -> SigninForm:
    checked = {name: field(data, name) in ("on", "true") for name in CHECKBOXES}
    return SigninForm(
        display_name=field(data, "display_name")[:200],
        issuer=field(data, "issuer")[:2100],
        client_id=field(data, "client_id")[:300],
        client_secret=field(data, "client_secret")[:1000],
        default_role=field(data, "default_role"),
        role_claim=field(data, "role_claim")[:200],
        role_map=field(data, "role_map")[:50_000],
        **checked,
    )


async def _environment(
    db: AsyncSession, user: CurrentUser, services: Services
) -> oidc.Provider | None:
    """The operator's provider, when OIDC_* applies to this office."""
    if await oidc.environment_office(db, services.settings.oidc) != user.office_id:
        return None
    return await oidc.provider_for(db, services.vault, services.settings.oidc, user.office_id)


async def _tested(
    request: HTMXRequest,
    db: AsyncSession,
    user: CurrentUser,
    services: Services,
    form: SigninForm,
    *,
    found: signin_settings.Found | None = None,
    test_failure: str | None = None,
) -> Template:
    """htmx: the answer alone (the form keeps what was typed, the secret too); else the
    page with the form as posted (the secret must be typed again)."""
    if wants_fragment(request):
        return Template(
            "partials/signin_test_result.html",
            context={"found": found, "test_failure": test_failure},
        )
    return await _page(
        request, db, user, services, form=form, found=found, test_failure=test_failure
    )


async def _page(
    request: HTMXRequest,
    db: AsyncSession,
    user: CurrentUser,
    services: Services,
    *,
    form: SigninForm | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    found: signin_settings.Found | None = None,
    test_failure: str | None = None,
    status_code: int = 200,
) -> Template:
    row = await signin_settings.load(db, user.office_id)
    environment = await _environment(db, user, services)
    config = services.settings.oidc
    unassigned = config.configured and await oidc.environment_office(db, config) is None
    return Template(
        "partials/signin_settings.html"
        if wants_fragment(request)
        else "pages/settings_signin.html",
        context={
            "user": user,
            "tab": "palogging",
            "values": form or SigninForm.from_row(row),
            "errors": errors or {},
            "secret_stored": bool(row.oidc_client_secret_ciphertext),
            "environment": environment,
            "environment_elsewhere": unassigned,
            "redirect_uri": redirect_uri(request, services.settings),
            "roles": list(Role),
            "notice": notice,
            "found": found,
            "test_failure": test_failure,
            "provider_name": (environment.display_name if environment else row.oidc_display_name)
            or "identitetsleverandøren",
        },
        status_code=status_code,
    )
