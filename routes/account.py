"""Min konto: the signed-in person's own password and second factor."""

from __future__ import annotations

from typing import Any

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import User
from routes.auth import client_address
from routes.forms import Form, field
from services import audit, totp
from services.auth import CurrentUser, PasswordChangeError, change_password
from services.crypto import KeyVault
from services.passwords import MAX_LENGTH, MIN_LENGTH
from web.guards import READER
from web.sessions import rotate_session_id


class AccountController(Controller):
    path = "/konto"
    opt = READER  # one's own account
    include_in_schema = False

    @get("/")
    async def index(
        self, db: NamedDependency[AsyncSession], user: NamedDependency[CurrentUser]
    ) -> Template:
        return await _page(db, user)

    @get("/passord")
    async def password_page(self) -> Redirect:
        return Redirect("/konto", status_code=303)

    @post("/passord", status_code=200)
    async def change(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        data: Form,
    ) -> Template:
        try:
            await change_password(
                db,
                user,
                current=field(data, "current")[:MAX_LENGTH],
                # Not cut: a new password longer than login reads is refused, not shortened.
                new=field(data, "new"),
                repeated=field(data, "repeat"),
                address=client_address(request),
            )
        except PasswordChangeError as exc:
            status = 429 if exc.locked else 422
            return await _page(db, user, errors={exc.field: exc.message}, status_code=status)
        # Every session of the user is gone; this browser stays logged in under a new id.
        rotate_session_id(request)
        request.set_session({"user_id": user.id})
        return await _page(
            db, user, notice="Passordet er endret. Du er logget ut alle andre steder."
        )

    @post("/tofaktor", status_code=200)
    async def start_totp(
        self,
        db: NamedDependency[AsyncSession],
        vault: NamedDependency[KeyVault],
        user: NamedDependency[CurrentUser],
    ) -> Template | Redirect:
        """A new secret to set up (any earlier pending one is replaced)."""
        person = await _person(db, user)
        if not totp.has_local_password(person) or person.totp_enabled_at is not None:
            return Redirect("/konto", status_code=303)
        setup = await totp.start_setup(db, vault, person)
        return _setup_page(user, setup, error=None, status_code=200)

    @post("/tofaktor/oppsett", status_code=200)
    async def confirm_totp(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        vault: NamedDependency[KeyVault],
        user: NamedDependency[CurrentUser],
        data: Form,
    ) -> Template | Redirect:
        person = await _person(db, user)
        setup = totp.pending_setup(vault, person)
        if setup is None:
            return Redirect("/konto", status_code=303)
        actor = audit.actor_of(user, client_address(request))
        try:
            codes = await totp.confirm_setup(db, vault, person, field(data, "code")[:64], actor)
        except totp.TotpError as exc:
            return _setup_page(user, setup, error=exc.message, status_code=422)
        return _codes_page(user, codes, enabled=True)

    @post("/tofaktor/koder", status_code=200)
    async def new_codes(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
    ) -> Template | Redirect:
        person = await _person(db, user)
        actor = audit.actor_of(user, client_address(request))
        try:
            codes = await totp.new_recovery_codes(db, person, actor)
        except totp.TotpError:
            return Redirect("/konto", status_code=303)
        return _codes_page(user, codes, enabled=False)

    @post("/tofaktor/av", status_code=200)
    async def switch_off(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        vault: NamedDependency[KeyVault],
        user: NamedDependency[CurrentUser],
        data: Form,
    ) -> Template:
        person = await _person(db, user)
        actor = audit.actor_of(user, client_address(request))
        try:
            await totp.switch_off(db, vault, person, field(data, "proof")[:MAX_LENGTH], actor)
        except totp.TotpError as exc:
            status = 429 if exc.locked else 422
            return await _page(db, user, totp_error=exc.message, status_code=status)
        return await _page(db, user, totp_notice="Tofaktor er slått av.")


async def _person(db: AsyncSession, user: CurrentUser) -> User:
    person = await db.get(User, user.id)
    assert person is not None  # the guard loaded this active person in this request
    return person


async def _page(
    db: AsyncSession,
    user: CurrentUser,
    *,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    totp_error: str | None = None,
    totp_notice: str | None = None,
    status_code: int = 200,
) -> Template:
    person = await _person(db, user)
    context: dict[str, Any] = {
        "user": user,
        "has_password": totp.has_local_password(person),
        "errors": errors or {},
        "notice": notice,
        "min_length": MIN_LENGTH,
        "totp_enabled_at": person.totp_enabled_at,
        "totp_required": await totp.required_by_office(db, user.office_id),
        "codes_left": await totp.recovery_codes_left(db, user.id),
        "totp_error": totp_error,
        "totp_notice": totp_notice,
    }
    return Template("pages/account.html", context=context, status_code=status_code)


def _setup_page(
    user: CurrentUser, setup: totp.Setup, *, error: str | None, status_code: int
) -> Template:
    return Template(
        "pages/totp_setup.html",
        context={
            "user": user,
            "setup": setup,
            "error": error,
            "action": "/konto/tofaktor/oppsett",
        },
        status_code=status_code,
    )


def _codes_page(user: CurrentUser, codes: list[str], *, enabled: bool) -> Template:
    return Template(
        "pages/totp_recovery_codes.html",
        context={"user": user, "codes": codes, "next": "/konto", "enabled": enabled},
    )
