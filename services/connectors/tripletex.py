"""Tripletex API v2 client, and the Tripletex connector built on it.

The client is `services.connectors.http.ApiClient` with Tripletex's pieces: its session
token as Basic auth, the rate-limit reset header it sends with a 429, and what its error
bodies say. It sends through the httpx transport it is given: `services.outbound`'s
aiohttp pool in the app, `httpx.MockTransport` in unit tests.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx

from services.connectors.base import (
    Balances,
    CallbackRejected,
    Capabilities,
    ChangeEvent,
    CompanyRef,
    ConnectKind,
    ErpError,
    ErpUnavailable,
    KeyInfo,
    KeyKind,
    KeyRejected,
    RemoteAccount,
    RemoteClient,
    RemotePosting,
    RemoteSubscription,
    Wording,
)
from services.connectors.http import ApiClient, ErrorMap, RetryPolicy, count_attempts
from services.connectors.pacing import RateBudget
from services.metrics import Metrics
from services.settings import SettingsError

log = logging.getLogger(__name__)
T = TypeVar("T")
SYSTEM = "tripletex"
DEMO_CONSUMER_TOKEN = "demo-consumer-token"

OWN_COMPANY = 0  # Basic-auth username meaning "the key's own company"
SESSION_DAYS = 3  # session tokens live this long; renewed a day before they expire
MAX_RATE_LIMIT_WAIT = 60.0
MAX_ERP_ID = 2**63 - 1  # Tripletex's ids are int64, stored as BIGINT
# What a signed but malformed callback body raises. OverflowError: int() of `Infinity`, which
# Python's JSON accepts; RecursionError: deep nesting.
MALFORMED = (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError)
# What changes a client's accounts or balances (voucher.update also fires on posting changes).
EVENTS = (
    "voucher.create",
    "voucher.update",
    "voucher.delete",
    "account.create",
    "account.update",
    "account.delete",
)


def _error_detail(content: bytes) -> str:
    body = json.loads(content)
    return body.get("message") or body.get("developerMessage") or ""


ERRORS = ErrorMap("Tripletex", request_id_header="x-tlx-request-id", detail=_error_detail)


@dataclass(frozen=True)
class SessionToken:
    token: str
    expires: date  # valid until midnight at the end of this date
    # The key's rate-limit budget, shared by every request made with the key.
    budget: RateBudget = field(default_factory=RateBudget, compare=False, repr=False)

    def is_fresh(self, today: date) -> bool:
        return today < self.expires


class SessionAuth(httpx.Auth):
    """Tripletex's Basic auth: the company acted for as user name, the session token as
    password."""

    def __init__(self, company_id: int, session: SessionToken) -> None:
        credentials = base64.b64encode(f"{company_id}:{session.token}".encode()).decode()
        self._header = "Basic " + credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class TripletexClient:
    def __init__(
        self,
        http: httpx.AsyncBaseTransport,
        *,
        base_url: str,
        consumer_token: str,
        max_retries: int = 2,
        backoff: float = 0.25,
        today: Callable[[], date] = date.today,
        metrics: Metrics | None = None,
    ) -> None:
        self._api = ApiClient(
            http,
            base_url=base_url,
            system=SYSTEM,
            errors=ERRORS,
            retry=RetryPolicy(
                max_retries=max_retries,
                backoff=backoff,
                # Tripletex answers 429 until the period resets; waiting less is wasted calls.
                wait_header="X-Rate-Limit-Reset",
                max_wait=MAX_RATE_LIMIT_WAIT,
            ),
            hooks=[count_attempts(SYSTEM, metrics)],
            log=log,
        )
        self._consumer_token = consumer_token
        self._today = today
        self._sessions: dict[str, SessionToken] = {}
        self._budgets: dict[str, RateBudget] = {}  # per key; outlives its session tokens
        self._creating: dict[str, asyncio.Lock] = {}
        # ETags of conditional GETs, per company and URL. Only tags, not bodies: a 304 means
        # "what you stored last time is still right", which is all an incremental sync needs.
        self._etags: dict[tuple[int, str], str] = {}

    async def session_for(self, employee_token: str) -> SessionToken:
        """A cached session token for this key, created or renewed as needed."""
        cache_key = hashlib.sha256(employee_token.encode()).hexdigest()
        session = self._sessions.get(cache_key)
        if session is not None and session.is_fresh(self._today()):
            return session
        # One creation per key: a sync fetches several months at once, and each would
        # otherwise make a session of its own.
        async with self._creating.setdefault(cache_key, asyncio.Lock()):
            session = self._sessions.get(cache_key)
            if session is None or not session.is_fresh(self._today()):
                budget = self._budgets.setdefault(cache_key, RateBudget())
                session = replace(await self.create_session(employee_token), budget=budget)
                self._sessions[cache_key] = session
        return session

    def forget_session(self, employee_token: str, stale: SessionToken | None = None) -> None:
        """Drop the cached session (only if it is still `stale`, when given: a fetch running
        alongside may have replaced it already)."""
        cache_key = hashlib.sha256(employee_token.encode()).hexdigest()
        if stale is None or self._sessions.get(cache_key) == stale:
            self._sessions.pop(cache_key, None)

    async def create_session(self, employee_token: str) -> SessionToken:
        expires = self._today() + timedelta(days=SESSION_DAYS)
        answer = await self._api.request(
            "PUT",
            "/token/session/:create",
            params={
                "consumerToken": self._consumer_token,
                "employeeToken": employee_token,
                "expirationDate": expires.isoformat(),
            },
        )
        body = _json(answer)
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
        auth = SessionAuth(company_id, session)
        if not conditional:
            return _json(
                await self._api.request(
                    "GET", path, params=params, auth=auth, budget=session.budget
                )
            )
        cache_key = (company_id, f"{path}?{urlencode(sorted((params or {}).items()))}")
        headers = {"If-None-Match": tag} if (tag := self._etags.get(cache_key)) else None
        answer = await self._api.request(
            "GET", path, params=params, headers=headers, auth=auth, budget=session.budget
        )
        if answer.status_code == 304:
            return None
        body = _json(answer)
        # Tripletex's checksum feature: the list's versionDigest goes back in If-None-Match
        # (real Tripletex sends no ETag header; one is only a fallback).
        if tag := body.get("versionDigest") or answer.headers.get("ETag"):
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
        answer = await self._api.request(
            method, path, json=body, auth=SessionAuth(company_id, session), budget=session.budget
        )
        return _json(answer) if answer.content else None

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


def _json(answer: httpx.Response) -> Any:
    # Amounts are decimal kroner: parse them as Decimal, never through float.
    return json.loads(answer.content, parse_float=Decimal)


class TripletexConnector:
    system = SYSTEM
    display_name = "Tripletex"
    capabilities = Capabilities(connect=ConnectKind.KEY, webhooks=True)
    wording = Wording(
        no_api_access=(
            "Klienten har ikke gitt regnskapskontoret API-tilgang. I Tripletex: gå inn på "
            "klienten → Regnskap → Innstillinger → Regnskapsførers tilgang → sett hake for "
            "API-tilgang."
        ),
        access_lost=(
            "Nøkkelen når ikke lenger denne klienten. Gi nøkkelen klienttilgang til klienten i "
            "Tripletex og trykk Oppdater klientliste."
        ),
        no_clients="Gi nøkkelen klienttilgang i Tripletex og trykk Oppdater klientliste.",
        guide_path="/guide/tripletex",
    )

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

    async def fetch_postings(
        self,
        key: str,
        company: CompanyRef,
        account_number: int,
        date_from: date,
        date_to: date,
    ) -> list[RemotePosting]:
        """The hovedbok of one account: its id looked up by number, then every page of
        `/ledger/posting` for that id (dateTo is exclusive in Tripletex, as here)."""

        async def fetch(session: SessionToken) -> list[dict[str, Any]]:
            auth_company = _auth_company(company)
            found = await self._client.get(
                session,
                "/ledger/account",
                company_id=auth_company,
                params={"number": str(account_number), "fields": "id,number"},
            )
            ids = [
                int(item["id"])
                for item in (found or {}).get("values", [])
                if int(item.get("number", -1)) == account_number
            ]
            if not ids:
                return []  # no such account in Tripletex (any more): nothing posted on it
            return [
                item
                async for item in self._client.iter_list(
                    session,
                    "/ledger/posting",
                    company_id=auth_company,
                    params={
                        "dateFrom": date_from.isoformat(),
                        "dateTo": date_to.isoformat(),
                        "accountId": ids[0],
                        "fields": POSTING_FIELDS,
                    },
                )
            ]

        rows = await self._with_session(key, fetch)
        postings = [_remote_posting(item) for item in rows]
        return sorted(postings, key=lambda p: p.date)  # stable: Tripletex's order within a day

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
            event = ChangeEvent(
                subscription_id=int(data["subscriptionId"]),
                event=str(data["event"]),
                object_id=int(data["id"]),
                day=day,
            )
        except MALFORMED as exc:
            raise CallbackRejected(f"malformed callback: {type(exc).__name__}") from exc
        # A signed body is still no proof of a sane one; an id past BIGINT failed the database
        # write of the whole batch of callbacks it arrived with.
        if not (1 <= event.object_id <= MAX_ERP_ID and 1 <= event.subscription_id <= MAX_ERP_ID):
            raise CallbackRejected("malformed callback: id out of range")
        return event

    async def _with_session(self, key: str, call: Callable[[SessionToken], Awaitable[T]]) -> T:
        """Run `call` with the cached session; if Tripletex refuses that session (expired,
        revoked), make a new one once. A key refused at session creation is really refused."""
        session = await self._client.session_for(key)
        try:
            return await call(session)
        except KeyRejected:
            self._client.forget_session(key, stale=session)
            return await call(await self._client.session_for(key))


ACCOUNTS_PAGE = 10000
ACCOUNT_FIELDS = (
    "id,number,name,type,isInactive,isBankAccount,vatType(number),saftCode,groupingCode"
)
ZERO = Decimal("0.00")
POSTING_FIELDS = "date,description,amount,voucher(number,year,description)"


def _auth_company(company: CompanyRef) -> int:
    return OWN_COMPANY if company.is_own_company else company.erp_id


def _money(value: Any) -> Decimal:
    if value is None:
        return ZERO
    # JSON numbers arrive as Decimal already (parse_float); a string or int is converted.
    return (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(ZERO)


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


def _remote_posting(item: dict[str, Any]) -> RemotePosting:
    voucher = item.get("voucher") or {}
    number = voucher.get("number")
    year = voucher.get("year")
    label = f"{number}-{year}" if number and year else str(number or "")
    return RemotePosting(
        date=date.fromisoformat(str(item["date"])[:10]),
        voucher_number=label,
        description=item.get("description") or voucher.get("description") or "",
        amount=_money(item.get("amount")),
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


@dataclass(frozen=True)
class TripletexSettings:
    """TRIPLETEX_BASE_URL and TRIPLETEX_CONSUMER_TOKEN (our API consumer token)."""

    base_url: str
    consumer_token: str
    system: str = SYSTEM

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, demo: bool, port: int) -> TripletexSettings:
        if demo:  # the simulator, served beside the app
            base_url = env.get("TRIPLETEX_BASE_URL") or f"http://127.0.0.1:{port}/tripletex/v2"
            consumer = env.get("TRIPLETEX_CONSUMER_TOKEN") or DEMO_CONSUMER_TOKEN
        else:
            base_url = env.get("TRIPLETEX_BASE_URL", "https://tripletex.no/v2")
            consumer = env.get("TRIPLETEX_CONSUMER_TOKEN", "").strip()
            if not consumer:
                raise SettingsError("TRIPLETEX_CONSUMER_TOKEN is required outside demo mode")
            if consumer == DEMO_CONSUMER_TOKEN:
                raise SettingsError("TRIPLETEX_CONSUMER_TOKEN is the demo token; set your own")
        if not base_url.startswith(("http://", "https://")):
            raise SettingsError("TRIPLETEX_BASE_URL must start with http:// or https://")
        return cls(base_url=base_url.rstrip("/"), consumer_token=consumer)

    def connector(self, http: httpx.AsyncBaseTransport, metrics: Metrics) -> TripletexConnector:
        return TripletexConnector(
            TripletexClient(
                http,
                base_url=self.base_url,
                consumer_token=self.consumer_token,
                metrics=metrics,
            )
        )
