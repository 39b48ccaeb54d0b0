"""ASGI middleware around the whole app: request ids and request metrics.

A caller's (or proxy's) `X-Request-ID` is kept when it is a sane token, so one id can follow a
request through several systems; otherwise we make one.
"""

from __future__ import annotations

import re
from uuid import uuid4

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from services.metrics import KNOWN_METHODS, UNMATCHED_ROUTE, Metrics
from services.request_context import request_id_var

HEADER = b"x-request-id"
# Short and plain, so a caller cannot put newlines, markup or a novel into our logs.
_SANE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == HEADER:
            candidate = value.decode("latin-1")
            return candidate if _SANE.fullmatch(candidate) else None
    return None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope) or uuid4().hex

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message["headers"] = [*headers, (HEADER, request_id.encode())]
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class HttpMetricsMiddleware:
    """Counts every HTTP response by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: int | None = None

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            # Litestar's router puts the matched template (e.g. "/integrasjoner/{integration_id}")
            # in the scope; raw paths would make one time series per id.
            route = scope.get("path_template") or UNMATCHED_ROUTE  # type: ignore[typeddict-item]
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            self.metrics.count_http_request(method, route, status or 500)


XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml", "application/octet-stream"})
NOT_XML = "Filen må sendes som application/xml.".encode()


class XmlBodyOnly:
    """For routes that stream a file as the raw body: anything else is 415 before the body
    is touched. The CSRF middleware (inside this one) reads a form-encoded body whole to
    look for its token, and these routes lift the body size limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            content_type = dict(scope["headers"]).get(b"content-type", b"").decode("latin-1")
            if content_type.split(";")[0].strip().lower() not in XML_MEDIA_TYPES:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 415,
                        "headers": [
                            (b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(NOT_XML)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": NOT_XML})
                return
        await self.app(scope, receive, send)
