"""An ERP's HTTP API on httpx, built in layers as httpx itself is; no layer names a system.

- transport: an `httpx.AsyncBaseTransport` (`services.outbound.AiohttpPool` in the app,
  `httpx.MockTransport` in unit tests).
- auth: an `httpx.Auth` per request, the system's own (Tripletex: Basic with a session
  token; OAuth2 client credentials: a bearer token).
- retry and pacing: `RetryPolicy` says which answers are tried again and how long to wait;
  a `RateBudget` (one per key) paces every request made with it.
- errors: `ErrorMap`, a status → exception table and what the system's error body says.
- metrics: `AttemptHook`s, called for every attempt, retries included.

`ApiClient` composes them. It answers with the response when it is a success or a 304, body
read, and raises the errors of `services.connectors.base` otherwise.

It sends through the transport itself rather than through an `httpx.AsyncClient`: the
client's request building (a second and third URL parse to merge the parameters, default
headers) and cookie handling (a urllib request and response per answer) cost more than the
rest of a request, and none of it is wanted here: no redirects, no cookies, timeouts are the
pool's. Each path is parsed once (`_url`). bench.cost, a Tripletex balance sheet: 1.02 M
instructions on aiohttp alone, 2.23 M through an AsyncClient, 1.38 M this way; the rest
over aiohttp is httpx's request, response and header objects (bench/README.md, session 8).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode

import httpx

from services.connectors.base import (
    AccessDenied,
    ErpError,
    ErpUnavailable,
    KeyRejected,
    RateLimited,
    request_stats,
)
from services.connectors.pacing import RateBudget

if TYPE_CHECKING:
    from services.metrics import Metrics


class AttemptHook(Protocol):
    def __call__(self, method: str, status: int | str, retry: bool) -> None:
        """One attempt went out: its answer's status, or "error" when none came back."""


def count_attempts(system: str, metrics: Metrics | None) -> AttemptHook:
    """The hook every connector passes: the system's request metric, and the sync run's
    `request_stats` (every attempt counts: that is what the system's rate limit sees)."""

    def hook(method: str, status: int | str, retry: bool) -> None:
        if metrics is not None:
            metrics.count_system_request(system, method, status)
        if (stats := request_stats.get()) is not None:
            stats.requests += 1
            stats.retries += int(retry)

    return hook


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2  # attempts after the first
    backoff: float = 0.25  # seconds before the first retry, doubled for each next, jittered
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    # On a 429: the header saying how many seconds until the limit resets. Waiting less
    # only spends calls on more 429s; without the header, the backoff applies.
    wait_header: str | None = None
    max_wait: float = 60.0

    def backoff_seconds(self, attempt: int) -> float:
        return self.backoff * 2**attempt * (0.5 + random.random())

    def rate_limit_wait(self, response: httpx.Response) -> float | None:
        if response.status_code != 429 or self.wait_header is None:
            return None
        try:
            return min(float(response.headers[self.wait_header]), self.max_wait)
        except (KeyError, ValueError):
            return None


def problem_detail(content: bytes) -> str:
    """What an RFC 7807 problem document says (its `detail`, else its `title`)."""
    body = json.loads(content)
    return body.get("detail") or body.get("title") or ""


# The statuses every ERP means the same by; anything else from 500 up is ErpUnavailable.
STATUS_ERRORS: Mapping[int, type[ErpError]] = {
    401: KeyRejected,
    403: AccessDenied,
    429: RateLimited,
}


@dataclass(frozen=True)
class ErrorMap:
    name: str  # the system as messages name it
    request_id_header: str | None = None  # the system's id of a request, for its support
    # What the error body says; a body it cannot read (ValueError, AttributeError) is
    # quoted instead.
    detail: Callable[[bytes], str] = problem_detail
    table: Mapping[int, type[ErpError]] = field(default_factory=lambda: dict(STATUS_ERRORS))

    def error_for(self, response: httpx.Response) -> ErpError:
        try:
            detail = self.detail(response.content)
        except (ValueError, AttributeError):
            detail = response.content[:200].decode(errors="replace")
        status = response.status_code
        kind = self.table.get(status) or (ErpUnavailable if status >= 500 else ErpError)
        request_id = self.request_id_header and response.headers.get(self.request_id_header)
        return kind(f"{self.name} {status}: {detail}".strip(), status=status, request_id=request_id)


MAX_PATHS = 1000  # paths with ids in them are many; the parses kept are not


class ApiClient:
    """One system's API at `base_url`: auth, retries, pacing, error mapping and hooks over
    `transport`."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        *,
        base_url: str,
        system: str,
        errors: ErrorMap,
        retry: RetryPolicy,
        hooks: Iterable[AttemptHook] = (),
        log: logging.Logger,
    ) -> None:
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        self._paths: dict[str, Any] = {}  # path -> httpx's parse of base + path
        self._system = system
        self._errors = errors
        self._retry = retry
        self._hooks = tuple(hooks)
        self._log = log  # the connector's logger: operators filter by it

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        auth: httpx.Auth | None = None,
        budget: RateBudget | None = None,
    ) -> httpx.Response:
        """Send with retries; the response when it is a success or a 304, else an ErpError."""
        url = self._url(path, urlencode(params) if params else None)
        request = httpx.Request(method, url, headers=headers, json=json)
        attempt = 0
        while True:
            if budget is not None:
                await budget.wait_turn()
            try:
                response = await self._send(request, auth)
            except httpx.TransportError as exc:
                self._attempted(method, "error", attempt)
                if attempt >= self._retry.max_retries:
                    # The name of what the pool raised (the transport's error wraps it).
                    cause = type(exc.__cause__ or exc).__name__
                    raise ErpUnavailable(f"{self._errors.name} unreachable: {cause}") from exc
                await asyncio.sleep(self._retry.backoff_seconds(attempt))
                attempt += 1
                continue
            status = response.status_code
            # Whole URLs, query included: the log redacts the secrets in them.
            self._log.debug("%s: %s %s %s", self._errors.name, method, request.url, status)
            self._attempted(method, status, attempt)
            if budget is not None:
                budget.observe(response.headers)
            if status in self._retry.statuses and attempt < self._retry.max_retries:
                await self._wait_before_retry(response, attempt, budget)
                attempt += 1
                continue
            if 200 <= status < 300 or status == 304:
                return response
            error = self._errors.error_for(response)
            self._log.warning(
                "%s error status=%s request_id=%s path=%s",
                self._system,
                status,
                error.request_id,
                path,
            )
            raise error

    def _url(self, path: str, query: str | None) -> httpx.URL:
        """The base URL with our path and query (the query as urlencode writes it, which is
        how httpx writes it too).

        httpx checks a URL character by character in Python, a fifth of a request's CPU
        here: each path is parsed once, as httpx parses it, and the query set beside it.
        `httpx.URL` has no public constructor from parsed parts, so this sets its parsed
        reference (httpx 0.28; tests/test_connector_http.py pins it).
        """
        parsed = self._paths.get(path)
        if parsed is None:
            if len(self._paths) >= MAX_PATHS:
                self._paths.clear()
            parsed = self._paths[path] = httpx.URL(self._base_url + path)._uri_reference
        url = httpx.URL.__new__(httpx.URL)
        url._uri_reference = parsed._replace(query=query)
        return url

    async def _send(self, request: httpx.Request, auth: httpx.Auth | None) -> httpx.Response:
        """One attempt, through the auth flow as httpx's client runs it; the body read."""
        if auth is None:
            return await self._exchange(request)
        flow = auth.async_auth_flow(request)
        request = await flow.__anext__()
        while True:
            response = await self._exchange(request)
            try:
                request = await flow.asend(response)
            except StopAsyncIteration:
                return response

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        response = await self._transport.handle_async_request(request)
        response.request = request
        await response.aread()
        return response

    def _attempted(self, method: str, status: int | str, attempt: int) -> None:
        for hook in self._hooks:
            hook(method, status, attempt > 0)

    async def _wait_before_retry(
        self, response: httpx.Response, attempt: int, budget: RateBudget | None
    ) -> None:
        wait = self._retry.rate_limit_wait(response)
        if wait is None:
            await asyncio.sleep(self._retry.backoff_seconds(attempt))
        elif budget is not None:
            budget.hold(wait)  # every request with this key waits, not just this one
        else:
            await asyncio.sleep(wait)
