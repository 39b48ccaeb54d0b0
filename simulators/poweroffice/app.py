"""The simulator as a Litestar ASGI app, laid out like PowerOffice's demo environment:

    {prefix}/v2/...          the Go API v2 (Onboarding, GeneralLedgerAccounts, ...)
    {prefix}/OAuth/Token     the token endpoint
    {prefix}/ApiAuthV2       the approval page Initiate's TemporaryUrl points at
    {prefix}/_sim/...        the control API (control.py)

Each API or token request, in order: an injected fault is drawn and latency slept; the
subscription key header is checked and the request counted against that key's rate limit
(as API Management in front of Go does); then the route is resolved, the bearer token
checked, the client's access checked and the handler run. Refusals are ProblemDetails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from litestar import Litestar, Request, Response, get, post, route
from litestar.params import FromPath

from simulators.poweroffice import api, approval, oauth
from simulators.poweroffice.api import Call, Reply
from simulators.poweroffice.control import control_handlers, problem_response
from simulators.poweroffice.errors import (
    PROBLEM_MEDIA_TYPE,
    Problem,
    too_many_requests,
    unauthorized,
)
from simulators.poweroffice.queries import Query
from simulators.poweroffice.render import to_json
from simulators.poweroffice.state import PowerOfficeState, Refused

log = logging.getLogger(__name__)

SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
OnResponse = Callable[[str, str, int, bytes], None]
AnyRequest = Request[Any, Any, Any]


def _site(request: AnyRequest, tail: str) -> str:
    """The simulator's own base URL as the caller sees it, also when mounted at a prefix."""
    raw = request.scope.get("raw_path")
    full = (unquote(raw.decode("latin-1")) if raw else request.scope["path"]).rstrip("/")
    prefix = full[: -len(tail)] if tail and full.lower().endswith(tail.lower()) else ""
    return f"{request.url.scheme}://{request.url.netloc}{prefix.rstrip('/')}"


class Pipeline:
    def __init__(self, state: PowerOfficeState, on_response: OnResponse | None) -> None:
        self.state = state
        self.on_response = on_response

    async def front(self, request: AnyRequest) -> str:
        """Faults, latency, subscription key and rate limit; the subscription key."""
        state = self.state
        # Drawn on arrival, before any await, so a seed fails the same requests every run;
        # an injected failure happens in front of Go and so never changes any state.
        fault = state.faults.draw()
        if state.faults.latency_seconds:
            await asyncio.sleep(state.faults.latency_seconds)
        if fault == "timeout":
            await asyncio.sleep(state.faults.timeout_delay_seconds)
            raise Problem(504, "Gateway Timeout", "Injected timeout.")
        if fault == "429":
            raise too_many_requests(1)
        if fault is not None:
            raise Problem(int(fault), "Server Error", f"Injected {fault}.")
        key = request.headers.get(SUBSCRIPTION_HEADER)
        if not key or key not in state.subscription_keys:
            raise unauthorized(
                "Access denied due to missing or invalid subscription key. Make sure to "
                f"include the {SUBSCRIPTION_HEADER} header when making requests to an API."
            )
        retry_after = state.retry_after(key)
        if retry_after is not None:
            raise too_many_requests(retry_after)
        return key

    async def api(self, request: AnyRequest, subpath: str) -> Response[bytes]:
        path = "/" + subpath.strip("/")
        template = path
        try:
            await self.front(request)
            found = api.resolve(request.method, path)
            template = found.template
            call = Call(
                state=self.state,
                query=Query(dict(request.query_params.items())),
                body=await request.body() if request.method in ("POST", "PUT", "PATCH") else b"",
                site=_site(request, "/v2" + path),
            )
            if found.bearer:
                call.client = self.client_of(request.headers.get("authorization"))
                api.check_access(found, call.client)
            reply = found.handler(call)
        except Problem as problem:
            reply = Reply(problem.status, problem.body("/v2" + path), problem.headers)
        except Exception:
            log.exception("poweroffice simulator failed on %s %s", request.method, path)
            problem = Problem(500, "Internal Server Error", "Unexpected error.")
            reply = Reply(500, problem.body("/v2" + path))
        return self.respond(request.method, template, reply)

    async def token(self, request: AnyRequest) -> Response[bytes]:
        try:
            key = await self.front(request)
            reply = oauth.token(
                self.state, request.headers.get("authorization"), await request.body(), key
            )
        except Problem as problem:
            reply = Reply(problem.status, problem.body("/OAuth/Token"), problem.headers)
        return self.respond(request.method, "/OAuth/Token", reply)

    def client_of(self, authorization: str | None) -> Any:
        if not authorization or authorization[:7].lower() != "bearer ":
            raise unauthorized("Missing bearer access token.")
        token = self.state.valid_token(authorization[7:].strip())
        if token is None:
            raise unauthorized("The access token is invalid or has expired.")
        return self.state.clients[token.client_id]

    def respond(self, method: str, template: str, reply: Reply) -> Response[bytes]:
        content = b"" if reply.body is None or reply.status == 204 else to_json(reply.body)
        media = "application/json; charset=utf-8"
        if reply.status >= 400 and isinstance(reply.body, dict) and "title" in reply.body:
            media = PROBLEM_MEDIA_TYPE
        if self.on_response is not None:
            self.on_response(method, template, reply.status, content)
        return Response(
            content=content, status_code=reply.status, media_type=media, headers=reply.headers
        )


def create_poweroffice_app(
    state: PowerOfficeState, *, prefix: str = "", on_response: OnResponse | None = None
) -> Litestar:
    """`on_response(method, spec_path, status, body)` sees every API and token answer."""
    prefix = prefix.rstrip("/")
    pipeline = Pipeline(state, on_response)
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]

    def paths(path: str) -> list[str]:
        # Served with and without the prefix: a parent app mounting this one strips it.
        return [f"{prefix}{path}", path] if prefix else [path]

    @route(paths("/v2/{subpath:path}"), http_method=methods, include_in_schema=False)
    async def go_api(request: AnyRequest, subpath: FromPath[str]) -> Response[bytes]:
        return await pipeline.api(request, subpath)

    @post(paths("/OAuth/Token"), include_in_schema=False)
    async def oauth_token(request: AnyRequest) -> Response[bytes]:
        return await pipeline.token(request)

    @get(paths("/ApiAuthV2"), include_in_schema=False)
    async def approval_page(request: AnyRequest) -> Response[str]:
        session = state.open_session(request.query_params.get("token", ""))
        if session is None:
            return Response(approval.EXPIRED_PAGE, status_code=410, media_type="text/html")
        if not state.offered_clients(session):
            state.refuse(session)
            target = approval.redirect_url(session.redirect_uri, status="ClientNotFound")
            return Response("", status_code=302, headers={"Location": target})
        return Response(approval.page(state, session), media_type="text/html")

    @post(paths("/ApiAuthV2"), include_in_schema=False, status_code=302)
    async def approval_answer(request: AnyRequest) -> Response[str]:
        form = await request.form()
        session = state.open_session(str(form.get("token", "")))
        if session is None:
            return Response(approval.EXPIRED_PAGE, status_code=410, media_type="text/html")
        if form.get("action") != "approve":
            state.refuse(session)
            target = approval.redirect_url(session.redirect_uri, status="Canceled")
            return Response("", status_code=302, headers={"Location": target})
        try:
            chosen = [int(value) for value in form.getall("client")] if "client" in form else []
            grant = state.approve(session, chosen)
        except (Refused, ValueError):
            page = approval.page(state, session, "Velg minst én klient.")
            return Response(page, status_code=400, media_type="text/html")
        target = approval.redirect_url(session.redirect_uri, token=grant.token, status="Success")
        return Response("", status_code=302, headers={"Location": target})

    return Litestar(
        route_handlers=[go_api, oauth_token, approval_page, approval_answer,
                        *control_handlers(state, paths)],
        exception_handlers={Problem: problem_response, Refused: problem_response},
        openapi_config=None,
        logging_config=None,  # the hosting process owns logging
    )  # fmt: skip
