"""Tripletex API v2 client on httpx, and the Tripletex connector built on it.

Errors are those of `services.connectors.base` (KeyRejected, AccessDenied, RateLimited,
ErpUnavailable), carrying the HTTP status and Tripletex's `x-tlx-request-id`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx

from models import KeyKind
from services.connectors.base import (
    AccessDenied,
    Balances,
    CallbackRejected,
    ChangeEvent,
    CompanyRef,
    ErpError,
    ErpUnavailable,
    KeyInfo,
    KeyRejected,
    RateLimited,
    RemoteAccount,
    RemoteClient,
    RemoteSubscription,
    request_stats,
)
from services.connectors.pacing import RateBudget
from services.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

OWN_COMPANY = 0  # Basic-auth username meaning "the key's own company"
SESSION_DAYS = 3  # session tokens live this long; renewed a day before they expire
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RATE_LIMIT_WAIT = 60.0
# What changes a client's accounts or balances (voucher.update also fires on posting changes).
EVENTS = (
    "voucher.create",
    "voucher.update",
    "voucher.delete",
    "account.create",
    "account.update",
    "account.delete",
)


@dataclass(frozen=True)
class SessionToken:
    token: str
    expires: date  # valid until midnight at the end of this date
    # The key's rate-limit budget, shared by every request made with the key.
    budget: RateBudget = field(default_factory=RateBudget, compare=False, repr=False)

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
        metrics: Metrics | None = None,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._consumer_token = consumer_token
        self._max_retries = max_retries
        self._backoff = backoff
        self._today = today
        self._sessions: dict[str, SessionToken] = {}
        self._budgets: dict[str, RateBudget] = {}  # per key; outlives its session tokens
        self._metrics = metrics
        # ETags of conditional GETs, per company and URL. Only tags, not bodies: a 304 means
        # "what you stored last time is still right", which is all an incremental sync needs.
        self._etags: dict[tuple[int, str], str] = {}

    async def session_for(self, employee_token: str) -> SessionToken:
        """A cached session token for this key, created or renewed as needed."""
        cache_key = hashlib.sha256(employee_token.encode()).hexdigest()
        session = self._sessions.get(cache_key)
        if session is None or not session.is_fresh(self._today()):
            budget = self._budgets.setdefault(cache_key, RateBudget())
            session = replace(await self.create_session(employee_token), budget=budget)
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
        conditional: bool = False,
    ) -> dict[str, Any] | None:
        """The response body; None when `conditional` and Tripletex says it is unchanged."""
        auth = httpx.BasicAuth(str(company_id), session.token)
        if not conditional:
            return await self._request("GET", path, params=params, auth=auth, budget=session.budget)
        cache_key = (company_id, str(httpx.URL(self._base_url + path, params=params)))
        headers = {"If-None-Match": tag} if (tag := self._etags.get(cache_key)) else {}
        response = await self._request(
            "GET", path, params=params, auth=auth, headers=headers, raw=True, budget=session.budget
        )
        if response.status_code == 304:
            return None
        body = _json(response)
        # Tripletex's checksum feature: the list's versionDigest goes back in If-None-Match
        # (real Tripletex sends no ETag header; one is only a fallback).
        if tag := body.get("versionDigest") or response.headers.get("ETag"):
            self._etags[cache_key] = tag
        return body

    async def send(
        self,
        session: SessionToken,
        method: str,
        path: str,
        *,
        company_id: int = OWN_COMPANY,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """A write (POST, PUT, DELETE); the response body, None when there is none."""
        auth = httpx.BasicAuth(str(company_id), session.token)
        response = await self._request(
            method, path, auth=auth, json_body=body, raw=True, budget=session.budget
        )
        return _json(response) if response.content else None

    def forget_etags(self, company_id: int) -> None:
        """After a failed sync: what we stored may not match the tags we saw."""
        for cache_key in [k for k in self._etags if k[0] == company_id]:
            del self._etags[cache_key]

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
            assert page is not None
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
        headers: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        raw: bool = False,
        budget: RateBudget | None = None,
    ) -> Any:
        url = self._base_url + path
        attempt = 0
        while True:
            if budget is not None:
                await budget.wait_turn()
            try:
                response = await self._http.request(
                    method, url, params=params, auth=auth, headers=headers, json=json_body
                )
            except httpx.TransportError as exc:
                self._count(method, "error", retry=attempt > 0)
                if attempt >= self._max_retries:
                    raise ErpUnavailable(f"Tripletex unreachable: {type(exc).__name__}") from exc
                await self._sleep_backoff(attempt)
                attempt += 1
                continue
            self._count(method, response.status_code, retry=attempt > 0)
            if budget is not None:
                budget.observe(response.headers)
            if response.status_code in RETRY_STATUSES and attempt < self._max_retries:
                await self._wait_before_retry(response, attempt, budget)
                attempt += 1
                continue
            if response.is_success or response.status_code == 304:
                return response if raw else _json(response)
            raise _error_for(response)

    def _count(self, method: str, status: int | str, *, retry: bool = False) -> None:
        # Every attempt counts, retries included: that is what Tripletex's rate limit sees.
        if self._metrics is not None:
            self._metrics.count_tripletex_request(method, status)
        if (stats := request_stats.get()) is not None:
            stats.requests += 1
            stats.retries += int(retry)

    async def _sleep_backoff(self, attempt: int) -> None:
        await asyncio.sleep(self._backoff * 2**attempt * (0.5 + random.random()))

    async def _wait_before_retry(
        self, response: httpx.Response, attempt: int, budget: RateBudget | None
    ) -> None:
        if response.status_code == 429:
            # Tripletex answers 429 until the period resets; waiting less is wasted calls.
            reset = _float_header(response, "X-Rate-Limit-Reset")
            if reset is not None:
                wait = min(reset, MAX_RATE_LIMIT_WAIT)
                if budget is not None:
                    budget.hold(wait)  # every request with this key waits, not just this one
                else:
                    await asyncio.sleep(wait)
                return
        await self._sleep_backoff(attempt)


def _json(response: httpx.Response) -> Any:
    # Amounts are decimal kroner: parse them as Decimal, never through float.
    return json.loads(response.content, parse_float=Decimal)


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

    async def fetch_accounts(
        self, key: str, company: CompanyRef, *, conditional: bool = False
    ) -> list[RemoteAccount] | None:
        async def fetch(session: SessionToken) -> list[RemoteAccount] | None:
            # One page holds any real chart of accounts, which makes it one conditional GET.
            body = await self._client.get(
                session,
                "/ledger/account",
                company_id=_auth_company(company),
                params={"fields": ACCOUNT_FIELDS, "count": ACCOUNTS_PAGE},
                conditional=conditional,
            )
            if body is None:
                return None  # unchanged since we last fetched it (304)
            values = body.get("values", [])
            if body.get("fullResultSize", len(values)) > len(values):
                values = [
                    item
                    async for item in self._client.iter_list(
                        session,
                        "/ledger/account",
                        company_id=_auth_company(company),
                        params={"fields": ACCOUNT_FIELDS},
                    )
                ]
            return [_remote_account(item) for item in values]

        return await self._with_session(key, fetch)

    async def fetch_balances(
        self,
        key: str,
        company: CompanyRef,
        date_from: date,
        date_to: date,
        *,
        conditional: bool = False,
    ) -> Balances:
        async def fetch(session: SessionToken) -> dict[str, Any] | None:
            return await self._client.get(
                session,
                "/balanceSheet",
                company_id=_auth_company(company),
                params={
                    "dateFrom": date_from.isoformat(),
                    "dateTo": date_to.isoformat(),
                    "fields": "account(number),balanceIn,balanceChange",
                    "count": 10000,  # a chart of accounts fits in one page
                },
                conditional=conditional,
            )

        body = await self._with_session(key, fetch)
        if body is None:
            return Balances(date_from, date_to, {}, {}, unchanged=True)
        if body.get("fullResultSize", 0) > len(body.get("values", [])):
            raise ErpUnavailable("balance sheet came back incomplete")  # never store a part
        opening: dict[int, Decimal] = {}
        movement: dict[int, Decimal] = {}
        for row in body.get("values", []):
            number = int(row["account"]["number"])
            opening[number] = opening.get(number, ZERO) + _money(row.get("balanceIn"))
            movement[number] = movement.get(number, ZERO) + _money(row.get("balanceChange"))
        return Balances(date_from, date_to, opening, movement)

    def forget_cache(self, company: CompanyRef) -> None:
        self._client.forget_etags(_auth_company(company))

    events = EVENTS

    async def subscribe(
        self, key: str, company: CompanyRef, event: str, target_url: str, secret: str
    ) -> RemoteSubscription:
        body = {
            "event": event,
            "targetUrl": target_url,
            # Only what tells us which months changed: a voucher's date.
            "fields": "id,date" if event.startswith("voucher.") else "id",
            "hmacSharedSecret": secret,
        }

        async def create(session: SessionToken) -> dict[str, Any] | None:
            return await self._client.send(
                session,
                "POST",
                "/event/subscription",
                company_id=_auth_company(company),
                body=body,
            )

        created = await self._with_session(key, create)
        return _remote_subscription((created or {}).get("value") or {})

    async def renew_subscription(
        self, key: str, company: CompanyRef, erp_id: int
    ) -> RemoteSubscription:
        async def renew(session: SessionToken) -> dict[str, Any] | None:
            path = f"/event/subscription/{erp_id}"
            auth_company = _auth_company(company)
            current = await self._client.get(session, path, company_id=auth_company)
            value = (current or {}).get("value") or {}
            body = {"id": erp_id, "version": value.get("version"), "status": "ACTIVE"}
            return await self._client.send(session, "PUT", path, company_id=auth_company, body=body)

        renewed = await self._with_session(key, renew)
        return _remote_subscription((renewed or {}).get("value") or {})

    async def unsubscribe(self, key: str, company: CompanyRef, erp_id: int) -> None:
        async def remove(session: SessionToken) -> None:
            await self._client.send(
                session,
                "DELETE",
                f"/event/subscription/{erp_id}",
                company_id=_auth_company(company),
            )

        try:
            await self._with_session(key, remove)
        except ErpError as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise

    async def list_subscriptions(self, key: str, company: CompanyRef) -> list[RemoteSubscription]:
        async def fetch(session: SessionToken) -> list[RemoteSubscription]:
            return [
                _remote_subscription(item)
                async for item in self._client.iter_list(
                    session,
                    "/event/subscription",
                    company_id=_auth_company(company),
                    params={"fields": "id,event,targetUrl,status"},
                )
            ]

        return await self._with_session(key, fetch)

    def callback_id(self, headers: dict[str, str]) -> str | None:
        return headers.get("idempotency-key") or None

    def read_callback(self, secret: str, headers: dict[str, str], body: bytes) -> ChangeEvent:
        # Tripletex signs "<idempotency-key>&<body>" with HMAC-SHA512 (the Subscription schema).
        key = headers.get("idempotency-key", "")
        given = headers.get("x-request-signature", "")
        digest = hmac.new(secret.encode(), key.encode() + b"&" + body, hashlib.sha512).digest()
        if not key or not hmac.compare_digest(base64.b64encode(digest).decode(), given):
            raise CallbackRejected("signature does not match")
        try:
            data = json.loads(body)
            value = data.get("value") or {}
            day = date.fromisoformat(value["date"]) if value.get("date") else None
            return ChangeEvent(
                subscription_id=int(data["subscriptionId"]),
                event=str(data["event"]),
                object_id=int(data["id"]),
                day=day,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CallbackRejected(f"malformed callback: {type(exc).__name__}") from exc

    async def _with_session(self, key: str, call: Callable[[SessionToken], Awaitable[T]]) -> T:
        """Run `call` with the cached session; if Tripletex refuses that session (expired,
        revoked), make a new one once. A key refused at session creation is really refused."""
        session = await self._client.session_for(key)
        try:
            return await call(session)
        except KeyRejected:
            self._client.forget_session(key)
            return await call(await self._client.session_for(key))


ACCOUNTS_PAGE = 10000
ACCOUNT_FIELDS = (
    "id,number,name,type,isInactive,isBankAccount,vatType(number),saftCode,groupingCode"
)
ZERO = Decimal("0.00")


def _auth_company(company: CompanyRef) -> int:
    return OWN_COMPANY if company.is_own_company else company.erp_id


def _money(value: Any) -> Decimal:
    return ZERO if value is None else Decimal(str(value)).quantize(ZERO)


def _remote_account(item: dict[str, Any]) -> RemoteAccount:
    return RemoteAccount(
        erp_id=int(item["id"]),
        number=int(item["number"]),
        name=item.get("name") or "",
        type=item.get("type") or "",
        is_inactive=bool(item.get("isInactive")),
        is_bank_account=bool(item.get("isBankAccount")),
        vat_code=(item.get("vatType") or {}).get("number"),
        saft_code=item.get("saftCode") or None,
        grouping_code=item.get("groupingCode") or None,
    )


def _remote_subscription(item: dict[str, Any]) -> RemoteSubscription:
    status = str(item.get("status") or "ACTIVE")
    return RemoteSubscription(
        erp_id=int(item["id"]),
        event=str(item.get("event") or ""),
        target_url=str(item.get("targetUrl") or ""),
        active=status == "ACTIVE",
        status=status,
    )


def _remote_client(company: dict[str, Any]) -> RemoteClient:
    return RemoteClient(
        erp_id=int(company["id"]),
        name=company.get("name") or "",
        org_number=company.get("organizationNumber") or "",
    )
