"""Who may use a route: a handler (or its controller or router) names the least role in
`opt={"role": Role.X}`; the guard checks the signed-in person's role from the database on
every request, so a changed role or a deactivation takes effect at once."""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from sqlmodel.ext.asyncio.session import AsyncSession

from models.office import Role
from services.auth import CurrentUser, load_current_user

# `opt` for routes each role may use.
READER = {"role": Role.READER}
ACCOUNTANT = {"role": Role.ACCOUNTANT}
ADMINISTRATOR = {"role": Role.ADMINISTRATOR}
# `opt` for routes anyone may use without signing in (login, logout, callbacks): said out
# loud, so tests/test_roles.py can tell them from a route that forgot its role.
PUBLIC = {"public": True}

_STATE_KEY = "current_user"


class LoginRequired(Exception):
    """No signed-in person; the app answers with a redirect to the login page."""


class RoleRequired(PermissionDeniedException):
    """Signed in, but the role does not allow this: 403."""

    def __init__(self, needed: Role) -> None:
        super().__init__(detail=f"requires role {needed.value}")
        self.needed = needed


async def current_user(connection: ASGIConnection, db: AsyncSession | None = None) -> CurrentUser:
    """The signed-in person, loaded once per request (with `db`, or a session of its own)."""
    cached = connection.state.get(_STATE_KEY)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    user_id = connection.session.get("user_id") if connection.scope.get("session") else None
    if not isinstance(user_id, int):
        raise LoginRequired
    if db is None:
        async with connection.app.state.services.session_factory() as own:
            user = await load_current_user(own, user_id)
    else:
        user = await load_current_user(db, user_id)
    if user is None:
        raise LoginRequired
    connection.state[_STATE_KEY] = user
    return user


def signed_in(connection: ASGIConnection) -> CurrentUser | None:
    """The person this request has loaded already (by the guard or the `user` dependency),
    for what renders without a handler's context: templates' controls, error pages."""
    user: CurrentUser | None = connection.state.get(_STATE_KEY)
    return user


async def role_guard(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    needed = handler.opt.get("role")
    if needed is None:
        return
    user = await current_user(connection)
    if not user.may(needed):
        raise RoleRequired(needed)
