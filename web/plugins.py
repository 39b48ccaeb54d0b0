"""The app in three plugins: the web (pages, sessions, CSRF, headers, templates), the sync
(the outbound pools, the connectors, the callback inbox, the scheduler and the notification
worker, handed out as one frozen Services), and the demo (registered only in demo mode)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from litestar import Litestar, MediaType, Request, Response
from litestar.config.app import AppConfig
from litestar.config.csrf import CSRFConfig
from litestar.exceptions import NotFoundException, ValidationException
from litestar.plugins import InitPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar_htmx import ClientRedirect, HTMXRequest
from sqlalchemy.ext.asyncio import AsyncEngine

from routes import STATIC_PREFIX
from routes.api import not_found_response
from routes.demo import DEMO_ROUTES
from routes.params import refused_query_message
from services.change_events.callbacks import CallbackInbox
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import SessionFactory, open_session
from services.metrics import Metrics
from services.notifications import EmailAlerts, running_notifications
from services.outbound import outbound
from services.outbound_guard import OutboundPolicy
from services.saft.uploads import ImportRunner, sweep
from services.settings import Settings
from services.sync.scheduler import running_sync
from web import templating
from web.dependencies import DEPENDENCIES, LoginRequired, Services, wants_fragment
from web.guards import RoleRequired, role_guard, signed_in
from web.middleware import HttpMetricsMiddleware, RequestIdMiddleware
from web.security_headers import SecurityHeadersMiddleware
from web.sessions import DatabaseStore, SessionConfig

ROOT = Path(__file__).resolve().parent.parent
SIMULATOR_PREFIX = "/tripletex"
POWEROFFICE_PREFIX = "/poweroffice"  # where PowerOfficeSettings' demo base URL points
DEMO_USER = ("demo@example.no", "demo", "Regnskapshuset Demo AS")


@dataclass(frozen=True)
class Foundation:
    """What exists before the app starts: the configuration, the database and the keys."""

    settings: Settings
    engine: AsyncEngine
    session_factory: SessionFactory
    vault: KeyVault
    metrics: Metrics


class SyncPlugin(InitPlugin):
    """Builds every shared service at start-up, in order, and stops them at shutdown."""

    def __init__(self, base: Foundation) -> None:
        self.base = base

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.lifespan.append(self.lifespan)
        return app_config

    @asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        base, settings = self.base, self.base.settings
        try:
            async with outbound(policy=OutboundPolicy.from_settings(settings)) as out:
                connectors = Connectors(
                    system.connector(out.erp, base.metrics) for system in settings.systems
                )
                inbox = CallbackInbox(
                    base.session_factory, base.vault, connectors, years=settings.sync.years
                )
                async with (
                    running_sync(
                        base.session_factory,
                        base.vault,
                        connectors,
                        settings.sync,
                        base.metrics,
                        settings.public_base_url,
                    ) as runner,
                    running_notifications(
                        base.session_factory,
                        base.vault,
                        out.guarded,
                        enabled=settings.sync.enabled,
                        alerts=EmailAlerts.from_settings(
                            base.session_factory,
                            settings,
                            lambda system: connectors.describe(system).display_name,
                        ),
                    ),
                ):
                    saft_imports = ImportRunner(base.session_factory)
                    for file_system in connectors.file_systems():
                        sweep(file_system.upload_dir)
                    app.state.services = Services(
                        settings=settings,
                        session_factory=base.session_factory,
                        vault=base.vault,
                        metrics=base.metrics,
                        http=out.http,
                        guarded=out.guarded,
                        connectors=connectors,
                        callback_inbox=inbox,
                        sync_runner=runner,
                        saft_imports=saft_imports,
                    )
                    try:
                        yield
                    finally:
                        await saft_imports.close()
        finally:
            await base.engine.dispose()


class WebPlugin(InitPlugin):
    """Pages for people: sessions, CSRF, templates, htmx, errors as pages, and the headers,
    request ids and metrics around every response."""

    def __init__(self, base: Foundation) -> None:
        self.base = base

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        settings = self.base.settings
        # __Host-: the browser takes the cookie only from https, for path / and no domain, so
        # a sibling subdomain cannot plant or overwrite it.
        cookie_prefix = "__Host-" if settings.secure_cookies else ""
        app_config.request_class = HTMXRequest
        app_config.dependencies.update(DEPENDENCIES)
        app_config.template_config = TemplateConfig(
            directory=ROOT / "templates",
            engine=JinjaTemplateEngine,
            engine_callback=templating.configure(settings),
        )
        lifetime = timedelta(hours=settings.session_max_hours)
        app_config.stores = {"sessions": DatabaseStore(self.base.session_factory, lifetime)}
        app_config.middleware.append(
            SessionConfig(
                store="sessions",
                key=f"{cookie_prefix}erp_session",
                exclude=f"^{STATIC_PREFIX}/",  # no session lookup per stylesheet
                max_age=8 * 3600,  # idle expiry; SESSION_MAX_HOURS caps a login's lifetime
                httponly=True,
                samesite="lax",
                secure=settings.secure_cookies,
                renew_on_access=True,
            ).middleware
        )
        app_config.csrf_config = CSRFConfig(
            secret=settings.secret_key,
            cookie_name=f"{cookie_prefix}erp_csrf",
            cookie_samesite="strict",
            cookie_secure=settings.secure_cookies,
            header_name="x-csrftoken",
        )
        app_config.guards.append(role_guard)
        app_config.exception_handlers.update(
            {
                LoginRequired: _to_login,
                RoleRequired: _forbidden,
                NotFoundException: _not_found,
                ValidationException: _invalid_parameter,
            }
        )
        return app_config

    def wrap(self, handler: ASGIApp) -> ASGIApp:
        """Around Litestar's whole handler, not in `middleware=`: that list runs only once a
        route matched, so 404s for unknown paths and errors raised by the session or CSRF
        middleware would get no request id, go uncounted, and miss the security headers
        (outermost, so static files and errors get them too)."""
        counted = RequestIdMiddleware(HttpMetricsMiddleware(handler, self.base.metrics))
        settings = self.base.settings
        return SecurityHeadersMiddleware(
            counted, hsts=settings.secure_cookies, cacheable_prefixes=(STATIC_PREFIX + "/",)
        )


class DemoPlugin(InitPlugin):
    """Demo mode: the demo office and user, and the buttons that drive the simulator."""

    def __init__(self, base: Foundation) -> None:
        self.base = base

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.extend(DEMO_ROUTES)
        app_config.on_startup.append(self.ensure_demo_user)
        return app_config

    async def ensure_demo_user(self) -> None:
        from services.auth import ensure_demo_user

        async with open_session(self.base.session_factory) as db:
            email, password, office = DEMO_USER
            await ensure_demo_user(db, email=email, password=password, office_name=office)


def with_simulator(app: ASGIApp) -> ASGIApp:
    """Send /tripletex/... and /poweroffice/... to the simulators and everything else
    (lifespan too) to the app."""
    from simulators import poweroffice, tripletex

    # On the app's port, so under the app's headers too (JSON APIs and one plain approval
    # page: none of them hurts them).
    simulators = {
        SIMULATOR_PREFIX: tripletex.create_simulator_app(
            tripletex.seed_demo(), prefix=SIMULATOR_PREFIX
        ),
        POWEROFFICE_PREFIX: poweroffice.create_poweroffice_app(
            poweroffice.seed_demo(), prefix=POWEROFFICE_PREFIX
        ),
    }
    wrapped = {
        prefix: SecurityHeadersMiddleware(simulator, hsts=False)
        for prefix, simulator in simulators.items()
    }

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http":
            for prefix, simulator in wrapped.items():
                if path == prefix or path.startswith(prefix + "/"):
                    await simulator(scope, receive, send)
                    return
        await app(scope, receive, send)

    return dispatch


def _to_login(request: Request, _exc: LoginRequired) -> Response:
    if isinstance(request, HTMXRequest) and wants_fragment(request):
        return ClientRedirect("/login")
    return Redirect("/login")


def _forbidden(request: Request, exc: RoleRequired) -> Response:
    """A page with the top bar; to htmx (and the SAF-T upload's own requests), the sentence
    alone as text, which static/app.js shows where the person acted."""
    needed = exc.needed.norwegian
    if isinstance(request, HTMXRequest) and wants_fragment(request):
        return Response(
            f"Du har ikke tilgang til dette. Det krever rollen {needed}.",
            media_type=MediaType.TEXT,
            status_code=403,
        )
    user = signed_in(request)  # the guard loaded the person
    return Template(
        "pages/forbidden.html", context={"needed": needed, "user": user}, status_code=403
    )


def _not_found(request: Request, _exc: NotFoundException) -> Response:
    if (api_response := not_found_response(request)) is not None:
        return api_response
    return Template("pages/not_found.html", status_code=404)


def _invalid_parameter(_request: Request, exc: ValidationException) -> Response:
    message = refused_query_message(exc)
    return Template("pages/bad_request.html", context={"message": message}, status_code=400)
