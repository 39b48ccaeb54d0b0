"""Tripletex API v2 client on httpx, and the Tripletex connector built on it.

Errors are those of `services.connectors.base` (KeyRejected, AccessDenied, RateLimited,
ErpUnavailable), carrying the HTTP status and Tripletex's `x-tlx-request-id`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx

from models import KeyKind
from services.connectors.base import (
    AccessDenied,
    ErpError,
    ErpUnavailable,
    KeyInfo,
    KeyRejected,
    RateLimited,
    RemoteClient,
)

log = logging.getLogger(__name__)

OWN_COMPANY = 0  # Basic-auth username meaning "the key's own company"
SESSION_DAYS = 3  # session tokens live this long; renewed a day before they expire
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RATE_LIMIT_WAIT = 60.0


@dataclass(frozen=True)
class SessionToken:
    token: str
    expires: date  # valid until midnight at the end of this date

    def is_fresh(self, today: date) -> bool:
        return today < self.expires


class TripletexClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        consumer_token: str,
        max_retries: int = 2,
        backoff: float = 0.25,
        today: Callable[[], date] = date.today,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._consumer_token = consumer_token
        self._max_retries = max_retries
        self._backoff = backoff
        self._today = today
        self._sessions: dict[str, SessionToken] = {}

    async def session_for(self, employee_token: str) -> SessionToken:
        """A cached session token for this key, created or renewed as needed."""
        cache_key = hashlib.sha256(employee_token.encode()).hexdigest()
        session = self._sessions.get(cache_key)
        if session is None or not session.is_fresh(self._today()):
            session = await self.create_session(employee_token)
            self._sessions[cache_key] = session
        return session

    def forget_session(self, employee_token: str) -> None:
        self._sessions.pop(hashlib.sha256(employee_token.encode()).hexdigest(), None)

    async def create_session(self, employee_token: str) -> SessionToken:
        expires = self._today() + timedelta(days=SESSION_DAYS)
        body = await self._request(
            "PUT",
            "/token/session/:create",
            params={
                "consumerToken": self._consumer_token,
                "employeeToken": employee_token,
                "expirationDate": expires.isoformat(),
            },
        )
        return SessionToken(token=body["value"]["token"], expires=expires)

    async def get(
        self,
        session: SessionToken,
        path: str,
        *,
        company_id: int = OWN_COMPANY,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return await self._request(
            "GET", path, params=params, auth=httpx.BasicAuth(str(company_id), session.token)
        )

    async def iter_list(
        self,
        session: SessionToken,
        path: str,
        *,
        company_id: int = OWN_COMPANY,
        params: dict[str, Any] | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[dict[str, Any]]:
        start = 0
        while True:
            page = await self.get(
                session,
                path,
                company_id=company_id,
                params={**(params or {}), "from": start, "count": page_size},
            )
            values = page.get("values", [])
            for value in values:
                yield value
            start += len(values)
            if not values or start >= page.get("fullResultSize", start):
                return

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        auth: httpx.Auth | None = None,
    ) -> dict[str, Any]:
        url = self._base_url + path
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, url, params=params, auth=auth)
            except httpx.TransportError as exc:
                if attempt >= self._max_retries:
                    raise ErpUnavailable(f"Tripletex unreachable: {type(exc).__name__}") from exc
                await self._sleep_backoff(attempt)
                attempt += 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < self._max_retries:
                await self._wait_before_retry(response, attempt)
                attempt += 1
                continue
            if response.is_success:
                return response.json()
            raise _error_for(response)

    async def _sleep_backoff(self, attempt: int) -> None:
        await asyncio.sleep(self._backoff * 2**attempt * (0.5 + random.random()))

    async def _wait_before_retry(self, response: httpx.Response, attempt: int) -> None:
        if response.status_code == 429:
            # Tripletex answers 429 until the period resets; waiting less is wasted calls.
            reset = _float_header(response, "X-Rate-Limit-Reset")
            if reset is not None:
                await asyncio.sleep(min(reset, MAX_RATE_LIMIT_WAIT))
                return
        await self._sleep_backoff(attempt)


def _float_header(response: httpx.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def _error_for(response: httpx.Response) -> ErpError:
    request_id = response.headers.get("x-tlx-request-id")
    try:
        body = response.json()
        detail = body.get("message") or body.get("developerMessage") or ""
    except ValueError:
        detail = response.text[:200]
    message = f"Tripletex {response.status_code}: {detail}".strip()
    log.warning(
        "tripletex error status=%s request_id=%s path=%s",
        response.status_code,
        request_id,
        response.request.url.path,
    )
    kind: type[ErpError]
    if response.status_code == 401:
        kind = KeyRejected
    elif response.status_code == 403:
        kind = AccessDenied
    elif response.status_code == 429:
        kind = RateLimited
    elif response.status_code >= 500:
        kind = ErpUnavailable
    else:
        kind = ErpError
    return kind(message, status=response.status_code, request_id=request_id)


class TripletexConnector:
    system = "tripletex"
    display_name = "Tripletex"

    def __init__(self, client: TripletexClient) -> None:
        self._client = client

    async def inspect_key(self, key: str) -> KeyInfo:
        # A fresh session: a key revoked since the last one must be noticed now.
        self._client.forget_session(key)
        try:
            session = await self._client.session_for(key)
        except ErpError as exc:
            # Tripletex refuses unknown or revoked employee tokens at session creation.
            if exc.status in (401, 403, 404, 422):
                raise KeyRejected(str(exc), status=exc.status, request_id=exc.request_id) from exc
            raise
        me = (
            await self._client.get(
                session,
                "/token/session/>whoAmI",
                params={"fields": "company(id,name,organizationNumber)"},
            )
        )["value"]
        company = me["company"]
        clients = [
            _remote_client(item)
            async for item in self._client.iter_list(
                session,
                "/company/>withLoginAccess",
                params={"fields": "id,name,organizationNumber"},
            )
        ]
        kind = KeyKind.ACCOUNTANT if clients else KeyKind.OWN_COMPANY
        if kind is KeyKind.OWN_COMPANY:
            # A key without client access reaches exactly one company: its own.
            clients = [_remote_client(company)]
        return KeyInfo(
            company_id=int(company["id"]),
            company_name=company.get("name") or "",
            kind=kind,
            clients=clients,
        )


def _remote_client(company: dict[str, Any]) -> RemoteClient:
    return RemoteClient(
        erp_id=int(company["id"]),
        name=company.get("name") or "",
        org_number=company.get("organizationNumber") or "",
    )
