"""Konto: the logged-in user's own password."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from routes.auth import client_address
from routes.forms import Form, field
from services.auth import CurrentUser, PasswordChangeError, change_password
from services.passwords import MAX_LENGTH, MIN_LENGTH
from web.guards import READER
from web.sessions import rotate_session_id


class AccountController(Controller):
    path = "/konto"
    opt = READER  # one's own account
    include_in_schema = False

    @get("/")
    async def index(self) -> Redirect:
        return Redirect("/konto/passord", status_code=303)

    @get("/passord")
    async def password_page(self, user: NamedDependency[CurrentUser]) -> Template:
        return _page(user)

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
            return _page(user, errors={exc.field: exc.message}, status_code=status)
        # Every session of the user is gone; this browser stays logged in under a new id.
        rotate_session_id(request)
        request.set_session({"user_id": user.id})
        return _page(user, notice="Passordet er endret. Du er logget ut alle andre steder.")


def _page(
    user: CurrentUser,
    *,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> Template:
    return Template(
        "pages/change_password.html",
        context={
            "user": user,
            "errors": errors or {},
            "notice": notice,
            "min_length": MIN_LENGTH,
        },
        status_code=status_code,
    )
