"""The API for the downstream products (/api/v1), its schema and docs. The settings pages
where an office manages its API tokens and webhook are HTML: routes/settings.py."""

from __future__ import annotations

from litestar import Request, Response, Router
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag

from routes.api.audit import AuditController
from routes.api.docs import api_docs
from routes.api.errors import EXCEPTION_HANDLERS, ApiError, problem_response
from routes.api.saft import SaftImportsController
from routes.api.schemas import Problem
from routes.api.v1 import ChangesController, ClientsController, provide_caller
from routes.params import ID_GUARDS

DESCRIPTION = """\
Synced charts of accounts and balances (saldobalanse) of the office's clients, for the
office's own products. Authenticate with `Authorization: Bearer <token>` (tokens are made in
Innstillinger → API-nøkler). Only clients with SEND DATA on are visible; any other client id
is 404. Lists page with `limit` and an opaque `cursor` (pass `next_cursor` back). Every 200
carries an `ETag`; send it as `If-None-Match` to get 304 when nothing changed. Amounts are
strings with two decimals. Errors are `{status, error, message, field}`. Requests are limited
per token (429 with `Retry-After`). Browsable documentation: /api/v1/docs."""


def api_router() -> Router:
    return Router(
        path="/api/v1",
        include_in_schema=True,  # the app leaves its HTML pages out of the schema
        route_handlers=[
            ClientsController,
            ChangesController,
            SaftImportsController,
            AuditController,
        ],
        guards=ID_GUARDS,
        dependencies={"caller": Provide(provide_caller)},
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        security=[{"bearerAuth": []}],
        # No login session and no CSRF cookie: API clients send a token, not cookies.
        opt={"skip_session": True, "exclude_from_csrf": True},
    )


def openapi_config() -> OpenAPIConfig:
    """Litestar's generated schema of the API alone, at /api/v1/schema/openapi.json."""
    return OpenAPIConfig(
        title="ERP-integrasjon API",
        version="1.0.0",
        description=DESCRIPTION,
        path="/api/v1/schema",
        render_plugins=[JsonRenderPlugin(), YamlRenderPlugin()],
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                "bearerAuth": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API token from Innstillinger → API-nøkler",
                )
            }
        ),
        tags=[
            Tag(name="Clients", description="Clients, charts of accounts and balances"),
            Tag(name="Changes", description="What changed since a cursor"),
            Tag(name="SAF-T", description="SAF-T Financial files pushed by local systems"),
            Tag(name="Audit", description="Who changed what, and when (tokens that may read it)"),
        ],
    )


def api_routes() -> list[object]:
    """Fresh route objects for one app (tests build many apps in one process)."""
    return [api_router(), api_docs]


__all__ = ["ApiError", "api_routes", "not_found_response", "openapi_config"]


def not_found_response(request: Request) -> Response | None:
    """A JSON 404 for paths under /api/ that match no route; None elsewhere."""
    if not request.url.path.startswith("/api/"):
        return None
    return problem_response(Problem(status=404, error="not_found", message="No such resource"))
