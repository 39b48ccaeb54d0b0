"""The simulator as a Litestar ASGI app: Tripletex API v2 under `/v2`, control API under `/_sim`.

All of `/v2` goes through one catch-all handler and the route table in `endpoints.py` rather
than one Litestar route per endpoint: that way unknown paths, wrong methods and bad
parameters all answer in Tripletex's error envelope, every response gets
`x-tlx-request-id`, and `on_response` learns the spec's path template (e.g.
`/company/>withLoginAccess`).

Each /v2 request, in order: an injected fault is drawn, latency is slept, an outage or the
fault answers; else the route is resolved, the session checked, the request counted against
its key's rate limit (headers on every authenticated answer), the company access checked and
the handler run. A GET answered 200 gets an ETag and becomes 304 when If-None-Match matches.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from litestar import Litestar, Request, Response, route
from litestar.params import FromPath

from simulators.tripletex import endpoints, events
from simulators.tripletex.control import control_error, control_handlers
from simulators.tripletex.endpoints import Auth, Call, Route
from simulators.tripletex.errors import (
    BAD_REQUEST,
    INTERNAL,
    NOT_FOUND,
    RATE_LIMITED,
    TripletexError,
    forbidden,
    unauthorized,
)
from simulators.tripletex.faults import UNLIMITED, RateStatus
from simulators.tripletex.model import Session
from simulators.tripletex.render import Renderer, to_json
from simulators.tripletex.state import SimulatorState

log = logging.getLogger(__name__)

OnResponse = Callable[[str, str, int, bytes], None]
ROUTES: tuple[Route, ...] = endpoints.ROUTES + events.ROUTES


def authenticate(state: SimulatorState, header: str | None) -> Auth:
    """HTTP Basic: username = company to act for (0 or blank = own), password = session."""
    return act_as(state, *session_of(state, header))


def session_of(state: SimulatorState, header: str | None) -> tuple[Session, str]:
    """The valid session in the Basic header, and the username (the company to act for)."""
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
    return session, username.strip()


def act_as(state: SimulatorState, session: Session, username: str) -> Auth:
    """The key's own company for username 0/blank, else a client it may act for (or 403)."""
    key = state.key(session.key_token)
    own = state.companies[key.company_id]
    me = state.employees[key.employee_id]
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
        state = self.state
        state.webhooks.attach(asyncio.get_running_loop())
        request_id = str(uuid.uuid4())
        path = "/" + subpath.strip("/")
        template = path
        headers = {"x-tlx-request-id": request_id}
        # Drawn on arrival, before any await, so a seed fails the same requests every run; an
        # injected failure happens in front of the API and so never changes any state.
        fault = state.faults.draw()
        if state.faults.latency_seconds:
            await asyncio.sleep(state.faults.latency_seconds)
        try:
            if state.outage_status is not None:
                raise TripletexError(state.outage_status, INTERNAL, "Service unavailable")
            if fault is not None:
                await self.fail(fault, headers)
            found, params = self.resolve(request.method, path)
            template = found.template
            call = Call(
                state=state,
                query={k: v for k, v in request.query_params.items()},
                render=Renderer(_api_base(request, path)),
                params=params,
                body=await request.body() if request.method in ("POST", "PUT") else b"",
            )
            if found.authenticated:
                session, username = session_of(state, request.headers.get("authorization"))
                # Every authenticated request counts, also those refused below or answered 304.
                rate = state.count_request(session)
                headers.update(rate.headers())
                if rate.exceeded:
                    raise TripletexError(429, RATE_LIMITED, "Too many requests", _RATE_MESSAGE)
                call.auth = act_as(state, session, username)
            reply = await found.handler(call)
            status, body = reply.status, reply.body
        except TripletexError as exc:
            status, body = exc.status, exc.envelope(request_id)
        except Exception:
            log.exception("tripletex simulator failed on %s %s", request.method, path)
            error = TripletexError(500, INTERNAL, "Internal error")
            status, body = error.status, error.envelope(request_id)
        content = b"" if body is None else to_json(body)
        if request.method == "GET" and status == 200:
            headers["etag"] = _etag(body, content)
            if _matches(request.headers.get("if-none-match"), headers["etag"]):
                status, content = 304, b""
        if self.on_response is not None:
            self.on_response(request.method, template, status, content)
        return Response(
            content=content,
            status_code=status,
            media_type="application/json; charset=utf-8",
            headers=headers,
        )

    async def fail(self, fault: str, headers: dict[str, str]) -> None:
        """Answer as an injected failure would: raises the error to send."""
        if fault == "timeout":
            # The client's read timeout should fire long before this answer comes.
            await asyncio.sleep(self.state.faults.timeout_delay_seconds)
            raise TripletexError(504, INTERNAL, "Gateway timeout")
        if fault == "429":
            limit = self.state.faults.rate_limit or UNLIMITED
            headers.update(RateStatus(limit, 0, 1, True).headers())
            raise TripletexError(429, RATE_LIMITED, "Too many requests", _RATE_MESSAGE)
        raise TripletexError(int(fault), INTERNAL, "Internal error", f"Injected {fault}")


_RATE_MESSAGE = "Rate limit exceeded: wait for X-Rate-Limit-Reset seconds."


def _etag(body: Any, content: bytes) -> str:
    """A list's versionDigest (a hash of the whole result), else a hash of the answer."""
    if isinstance(body, dict) and isinstance(body.get("versionDigest"), str):
        return f'"{body["versionDigest"]}"'
    return f'"{hashlib.sha256(content).hexdigest()}"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Standard quoted ETags (optionally W/) as well as the bare versionDigest Tripletex's own
    checksum example sends."""
    if not if_none_match:
        return False
    wanted = etag.strip('"')
    for tag in if_none_match.split(","):
        tag = tag.strip().removeprefix("W/").strip('"')
        if tag in (wanted, "*"):
            return True
    return False


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

    async def startup() -> None:
        # Only when lifespan reaches this app (a mounting app may keep it): requests attach too.
        state.webhooks.attach(asyncio.get_running_loop())

    return Litestar(
        route_handlers=[tripletex_root, tripletex, *control_handlers(state, paths)],
        exception_handlers={TripletexError: control_error},
        on_startup=[startup],
        on_shutdown=[state.webhooks.aclose],
        openapi_config=None,
        logging_config=None,  # the hosting process owns logging (and its redaction)
    )
