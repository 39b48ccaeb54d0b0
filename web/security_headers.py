"""Security headers on every response the app sends, whoever produced it.

ASGI middleware rather than Litestar's `response_headers=`: those reach only responses made
for a matched route, not a 404 for an unknown path, a 405, or an error answered by Litestar's
exception middleware or by the session and CSRF middleware.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
BASE_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
CACHE_CONTROL = b"cache-control"
# Pages, fragments and API answers hold an office's data: no browser or proxy may keep them.
NO_STORE = b"no-store"


class SecurityHeadersMiddleware:
    """Adds the headers a response lacks; one a route set on purpose is left as it is.

    `cacheable_prefixes`: paths (static files) that keep their own caching; every other
    response without a Cache-Control of its own gets `no-store`.
    """

    def __init__(
        self, app: ASGIApp, *, hsts: bool, cacheable_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        cacheable: tuple[tuple[bytes, bytes], ...] = BASE_HEADERS
        # Only behind HTTPS (secure cookies): a browser that saw HSTS on plain HTTP would
        # lock the operator out of an HTTP-only install for a year.
        if hsts:
            cacheable = (*cacheable, (b"strict-transport-security", HSTS.encode()))
        self.cacheable = _Headers(cacheable)
        self.private = _Headers((*cacheable, (CACHE_CONTROL, NO_STORE)))
        self.cacheable_prefixes = cacheable_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        extra = self.cacheable if path.startswith(self.cacheable_prefixes) else self.private

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = extra.added_to(message.get("headers") or [])
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _Headers:
    """Headers to add, with their names at hand: this runs for every response."""

    def __init__(self, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self.headers = headers
        self.names = frozenset(name for name, _ in headers)

    def added_to(self, given: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        headers = list(given)
        taken = self.names.intersection(name.lower() for name, _ in headers)
        if not taken:
            return [*headers, *self.headers]
        return [*headers, *(header for header in self.headers if header[0] not in taken)]
