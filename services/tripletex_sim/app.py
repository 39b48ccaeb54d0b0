"""The simulator as a Litestar ASGI app: Tripletex API v2 under `/v2`, control API under `/_sim`.

All of `/v2` goes through one catch-all handler and the route table in `endpoints.py` rather
than one Litestar route per endpoint: that way unknown paths, wrong methods and bad
parameters all answer in Tripletex's error envelope, every response gets
`x-tlx-request-id`, and `on_response` learns the spec's path template (e.g.
`/company/>withLoginAccess`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from litestar import Litestar, Request, Response, get, post, route
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, JSONBody

from services.tripletex_sim.endpoints import ROUTES, Auth, Call, Route
from services.tripletex_sim.errors import (
    BAD_REQUEST,
    INTERNAL,
    NOT_FOUND,
    TripletexError,
    forbidden,
    unauthorized,
)
from services.tripletex_sim.render import Renderer, to_json
from services.tripletex_sim.state import SimulatorState, UnknownKey

log = logging.getLogger(__name__)

OnResponse = Callable[[str, str, int, bytes], None]


def authenticate(state: SimulatorState, header: str | None) -> Auth:
    """HTTP Basic: username = company to act for (0 or blank = own), password = session."""
    if not header or not header[:6].lower() == "basic ":
        raise unauthorized("Missing Basic authentication header.")
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise unauthorized("Malformed Basic authentication header.") from None
    username, _, token = decoded.partition(":")
    session = state.valid_session(token)
    if session is None:
        raise unauthorized("Invalid or expired session token.")
    key = state.key(session.key_token)
    own = state.companies[key.company_id]
    me = state.employees[key.employee_id]
    username = username.strip()
    if username in ("", "0") or username == str(own.id):
        return Auth(key, own, me, me)
    if not username.isdigit():
        raise unauthorized(f"Invalid company id in username: '{username}'.")
    company_id = int(username)
    if company_id not in key.client_ids:
        raise forbidden(f"No login access to company {company_id}.")
    client = state.companies[company_id]
    if not client.api_access:
        raise forbidden(
            f"Company {company_id} has not given its accountant API access "
            "(Regnskapsførers tilgang → API-tilgang)."
        )
    return Auth(key, client, state.employees[key.proxy_employee_ids[company_id]], me)


def _api_base(request: Request[Any, Any, Any], subpath: str) -> str:
    """The simulator's own `/v2` base URL as the caller sees it, also when mounted."""
    raw = request.scope.get("raw_path")
    full = (unquote(raw.decode("latin-1")) if raw else request.scope["path"]).rstrip("/")
    tail = ("/v2" + subpath).rstrip("/")
    prefix = full[: -len(tail)] if full.endswith(tail) else ""
    origin = f"{request.url.scheme}://{request.url.netloc}"
    return f"{origin}{prefix.rstrip('/')}/v2"


class TripletexApi:
    def __init__(self, state: SimulatorState, on_response: OnResponse | None) -> None:
        self.state = state
        self.on_response = on_response

    def resolve(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = False
        for candidate in ROUTES:
            params = candidate.match(path)
            if params is not None:
                if candidate.method == method:
                    return candidate, params
                allowed = True
        if allowed:
            raise TripletexError(405, BAD_REQUEST, f"HTTP method {method} not allowed on {path}")
        raise TripletexError(404, NOT_FOUND, "Object not found", f"No endpoint at {path}")

    async def handle(self, request: Request[Any, Any, Any], subpath: str) -> Response[bytes]:
        request_id = str(uuid.uuid4())
        path = "/" + subpath.strip("/")
        template = path
        try:
            if self.state.outage_status is not None:
                raise TripletexError(self.state.outage_status, INTERNAL, "Service unavailable")
            found, params = self.resolve(request.method, path)
            template = found.template
            call = Call(
                state=self.state,
                query={k: v for k, v in request.query_params.items()},
                render=Renderer(_api_base(request, path)),
                params=params,
            )
            if found.authenticated:
                call.auth = authenticate(self.state, request.headers.get("authorization"))
            reply = await found.handler(call)
            status, body = reply.status, reply.body
        except TripletexError as exc:
            status, body = exc.status, exc.envelope(request_id)
        except Exception:
            log.exception("tripletex simulator failed on %s %s", request.method, path)
            error = TripletexError(500, INTERNAL, "Internal error")
            status, body = error.status, error.envelope(request_id)
        content = b"" if body is None else to_json(body)
        if self.on_response is not None:
            self.on_response(request.method, template, status, content)
        return Response(
            content=content,
            status_code=status,
            media_type="application/json; charset=utf-8",
            headers={"x-tlx-request-id": request_id},
        )


def create_simulator_app(
    state: SimulatorState,
    *,
    prefix: str = "",
    on_response: OnResponse | None = None,
) -> Litestar:
    prefix = prefix.rstrip("/")
    api = TripletexApi(state, on_response)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]

    def paths(path: str) -> list[str]:
        # Served both with and without the prefix: a parent app that mounts this one at the
        # prefix (Litestar's `asgi(..., is_mount=True)`) strips it, a plain dispatcher does
        # not. URLs in responses come from the raw request path, so both are right.
        return [f"{prefix}{path}", path] if prefix else [path]

    @route(paths("/v2"), http_method=methods, include_in_schema=False, name="tripletex-root")
    async def tripletex_root(request: Request[Any, Any, Any]) -> Response[bytes]:
        return await api.handle(request, "/")

    @route(paths("/v2/{subpath:path}"), http_method=methods, include_in_schema=False)
    async def tripletex(request: Request[Any, Any, Any], subpath: FromPath[str]) -> Response[bytes]:
        return await api.handle(request, subpath)

    @post(paths("/_sim/grant-client"), status_code=201, include_in_schema=False)
    async def grant_client(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        try:
            client = state.grant_new_client(str(data.get("employeeToken", "")))
        except UnknownKey:
            raise NotFoundException("Unknown employee token") from None
        return {
            "id": client.id,
            "name": client.name,
            "organizationNumber": client.organization_number,
        }

    @post(paths("/_sim/revoke-client"), status_code=204, include_in_schema=False)
    async def revoke_client(data: JSONBody[dict[str, Any]]) -> None:
        try:
            state.revoke_client(str(data.get("employeeToken", "")), int(data["companyId"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationException(f"Cannot revoke: {exc!r}") from None

    @get(paths("/_sim/health"), include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "today": state.today.isoformat(), "companies": len(state.companies)}

    return Litestar(
        route_handlers=[tripletex_root, tripletex, grant_client, revoke_client, health],
        openapi_config=None,
        logging_config=None,  # the hosting process owns logging (and its redaction)
    )
