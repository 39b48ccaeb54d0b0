"""Logg inn med <provider>: the start of a sign-in through the office's OpenID Provider and
the provider's answer (services/oidc.py does the protocol and finds the person).

A failure sends the browser to the login page with the reason's code (`/login?sso=<code>`,
whose Norwegian message the page shows) and no session: a sign-in under way is single use
and gone from the session whatever the answer was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from routes.auth import client_address
from routes.params import ID_GUARDS
from services import oidc
from services.settings import Settings
from web.dependencies import Services
from web.guards import PUBLIC
from web.sessions import rotate_session_id

log = logging.getLogger("erp.oidc")
HOME = "/integrasjoner"


class OncePerOffice:
    """At most one event per office per `interval` (in this process). Anyone may open
    /login/oidc/{office}: while the provider is down each visit fails the same way, and one
    `signin.failed` a minute says so without letting a script fill the log."""

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self._last: dict[int, float] = {}

    def allow(self, office_id: int) -> bool:
        now = self.clock()
        last = self._last.get(office_id)
        if last is not None and now - last < self.interval:
            return False
        self._last[office_id] = now  # only offices with a provider set up get here
        return True


START_FAILURES = OncePerOffice()


class SsoController(Controller):
    guards = ID_GUARDS
    opt = PUBLIC
    include_in_schema = False

    @get("/login/oidc/{office_id:int}")
    async def begin(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        services: NamedDependency[Services],
        office_id: FromPath[int],
    ) -> Redirect:
        """The button, a link (a form could not redirect to the provider: CSP form-action
        'self'): off to the provider, with state, nonce and the PKCE verifier kept in this
        browser's session."""
        provider = await oidc.provider_for(db, services.vault, services.settings.oidc, office_id)
        if provider is None:
            return _failed(request, oidc.SigninFailed(oidc.Reason.NOT_CONFIGURED))
        try:
            url, pending = await oidc.start(
                services.guarded, provider, redirect_uri(request, services.settings)
            )
        except oidc.SigninFailed as exc:
            log.warning("sign-in through %s not started: %s", provider.display_name, exc)
            if START_FAILURES.allow(office_id):
                await oidc.record_failure(db, office_id, exc, client_address(request))
            return _failed(request, exc)
        request.set_session({**_session(request), oidc.PENDING_KEY: pending})
        return Redirect(url, status_code=303)

    @get(oidc.CALLBACK_PATH)
    async def callback(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        services: NamedDependency[Services],
    ) -> Redirect:
        """The provider's answer: signed in, or back to the login page saying why."""
        pending = _session(request).get(oidc.PENDING_KEY)
        office_id = pending.get("office_id") if isinstance(pending, dict) else None
        params = {name: request.query_params.get(name) or "" for name in ("state", "code", "error")}
        address = client_address(request)
        try:
            checked = oidc.check_callback(pending, params)
            provider = await oidc.provider_for(
                db, services.vault, services.settings.oidc, int(checked["office_id"])
            )
            if provider is None:
                raise oidc.SigninFailed(oidc.Reason.NOT_CONFIGURED, "switched off meanwhile")
            identity = await oidc.finish(
                services.guarded,
                provider,
                checked,
                params["code"],
                redirect_uri(request, services.settings),
            )
            user = await oidc.sign_in(db, provider, identity, address)
        except oidc.SigninFailed as exc:
            log.warning("sign-in through the identity provider refused: %s", exc)
            if isinstance(office_id, int):
                await oidc.record_failure(db, office_id, exc, address)
            return _failed(request, exc)
        rotate_session_id(request)
        request.set_session({"user_id": user.id})
        return Redirect(HOME, status_code=303)


def redirect_uri(request: Request, settings: Settings) -> str:
    """Where the provider sends the browser back: what an administrator registers there."""
    base = settings.public_base_url or str(request.base_url).rstrip("/")
    return base + oidc.CALLBACK_PATH


def _session(request: Request) -> dict[str, Any]:
    return dict(request.session) if request.scope.get("session") else {}


def _failed(request: HTMXRequest, failure: oidc.SigninFailed) -> Redirect:
    """Back to the login page with the reason; the sign-in under way is dropped, and with
    it the whole session unless someone was signed in already."""
    session = _session(request)
    session.pop(oidc.PENDING_KEY, None)
    if session.get("user_id"):
        request.set_session(session)
    else:
        request.clear_session()
    return Redirect(f"/login?sso={failure.reason.code}", status_code=303)
