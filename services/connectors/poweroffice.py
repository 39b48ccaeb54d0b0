"""PowerOffice Go API v2 client, and the PowerOffice Go connector built on it.

The client is `services.connectors.http.ApiClient` with PowerOffice's pieces: an OAuth2
client-credentials token per client key (Basic `application key:client key` at
`{base}/OAuth/Token`), the `Ocp-Apim-Subscription-Key` header on every call, `Retry-After`
on a 429, and RFC 7807 ProblemDetails error bodies. The API lives under `{base}/v2`.

Balances come from trial balances (the balance per account including a date; result
accounts count from 1 January of that date's year): a month's opening is the trial balance of
the day before it starts, its movement the difference to the trial balance of its last day.
A fetch afresh (a full sync) fills every month end of a year at once from the trial balance
of the day before the year (`GET /TrialBalance?date=`) and the year's lines
(`GET /AccountTransactions`): a full sync of 23 months costs 2 trial balances and a page per
5,000 lines a year, not 24 trial balances (bench/poweroffice_requests.py). A conditional
fetch (a poll) fetches a month end's trial balance alone. Both are cached per client key.

PowerOffice Go has no webhooks: live means polling. Changes show in the change filters
(`createdDateTimeOffsetGreaterThan` on AccountTransactions, `lastChangedDateTimeOffset-
GreaterThan` on GeneralLedgerAccounts), which `changed_since` and the conditional fetches use,
so an unchanged client costs two small requests per poll.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from services.connectors.base import (
    Balances,
    Capabilities,
    ChangeEvent,
    CompanyRef,
    ConnectKind,
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
SYSTEM = "poweroffice"
API = "/v2"
TOKEN_PATH = "/OAuth/Token"
SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
# The simulator's demo keys (simulators/poweroffice/state.py; a test pins that they agree).
DEMO_APPLICATION_KEY = "3f1c9a57-2b7e-4d1a-9c52-6a0e8b4d7f21"
DEMO_SUBSCRIPTION_KEY = "5e0c2a9b7d4f41c3a8e6b1d9f0a7c3e2"
PRODUCTION_BASE_URL = "https://goapi.poweroffice.net"

TOKEN_MARGIN = 60.0  # seconds before its expiry a token is replaced
MAX_RATE_LIMIT_WAIT = 60.0
PAGE_SIZE = 5000  # ResourceParameters.PageSize's documented default
# A trial balance or chart fetched this recently is shared by an unconditional fetch: the
# months of one sync run within seconds and their boundaries coincide.
FRESH_SECONDS = 60.0
# A change check this recent answers every conditional fetch of the client (one per sync).
CHECK_REUSE_SECONDS = 15.0
# How often a poll asks whether accounts were renamed or closed (new accounts show sooner:
# by the lines posted on them).
CHART_RECHECK_SECONDS = 3600.0
# Until the first change check has seen PowerOffice's own timestamps, what we cached is
# checked against our clock, this much earlier (clock skew, commit lag): a voucher in the
# margin costs a needless re-fetch, never a missed one.
CLOCK_MARGIN = timedelta(minutes=10)
# The posting dates a change check covers (AccountTransactions requires fromDate and toDate).
EARLIEST = date(2000, 1, 1)
LATEST = date(2099, 12, 31)
ZERO = Decimal("0.00")
BALANCE_TYPES = frozenset({"Asset", "Liability", "Equity"})
RESULT_TYPES = frozenset({"Income", "Expense"})


def _error_detail(content: bytes) -> str:
    """ProblemDetails (RFC 7807, lowercase on the wire, PascalCase in the spec's schema), or
    the token endpoint's OAuth error body."""
    body = json.loads(content)
    return (
        body.get("detail")
        or body.get("Detail")
        or body.get("error_description")
        or body.get("title")
        or body.get("Title")
        or body.get("error")
        or ""
    )


ERRORS = ErrorMap("PowerOffice Go", detail=_error_detail)


def _json(answer: httpx.Response) -> Any:
    # Amounts are decimal kroner: parse them as Decimal, never through float.
    return json.loads(answer.content, parse_float=Decimal)


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires: float  # on the client's monotonic clock

    def is_fresh(self, now: float) -> bool:
        return now < self.expires - TOKEN_MARGIN


class BearerAuth(httpx.Auth):
    def __init__(self, token: AccessToken) -> None:
        self._header = "Bearer " + token.token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class ClientCredentialsGrant(httpx.Auth):
    """The token request as OAuth2 wants it: Basic `application key:client key` and a form
    body. `ApiClient` builds JSON bodies only; an auth flow may send any request, so this
    one sends the form in place of the empty request it is given."""

    BODY = b"grant_type=client_credentials"

    def __init__(self, application_key: str, client_key: str) -> None:
        pair = f"{application_key}:{client_key}".encode()
        self._header = "Basic " + base64.b64encode(pair).decode()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("content-length", "content-type")
        }
        headers["Authorization"] = self._header
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        yield httpx.Request(request.method, request.url, headers=headers, content=self.BODY)


@dataclass(frozen=True)
class OnboardedClient:
    """A client the user approved in PowerOffice Go, with the key we act for it with."""

    name: str
    org_number: str
    client_key: str  # a secret: store it encrypted


def _cache_key(client_key: str) -> str:
    # Client keys are secrets: not kept as dictionary keys in memory dumps or logs.
    return hashlib.sha256(client_key.encode()).hexdigest()


class PowerOfficeClient:
    def __init__(
        self,
        http: httpx.AsyncBaseTransport,
        *,
        base_url: str,
        application_key: str,
        subscription_key: str,
        max_retries: int = 2,
        backoff: float = 0.25,
        page_size: int = PAGE_SIZE,
        clock: Callable[[], float] = time.monotonic,
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
                wait_header="Retry-After",
                max_wait=MAX_RATE_LIMIT_WAIT,
            ),
            hooks=[count_attempts(SYSTEM, metrics)],
            log=log,
        )
        self._application_key = application_key
        self._headers = {SUBSCRIPTION_HEADER: subscription_key}
        self._page_size = page_size
        self._clock = clock
        # PowerOffice throttles per subscription key, whichever client a call is for: one
        # budget for every request this client makes.
        self.budget = RateBudget()
        self._tokens: dict[str, AccessToken] = {}
        self._creating: dict[str, asyncio.Lock] = {}

    # -- onboarding (our application key; no client yet) ------------------------------------

    async def initiate(
        self, redirect_uri: str, org_number: str | None = None
    ) -> tuple[str, datetime]:
        """Start an onboarding: the URL to send the user to, and until when it works. Without
        `org_number` the user may pick among every client they reach."""
        body: dict[str, Any] = {
            "ApplicationKey": self._application_key,
            "RedirectUri": redirect_uri,
        }
        if org_number:
            body["ClientOrganizationNo"] = org_number
        answer = _json(await self._post(f"{API}/Onboarding/Initiate", body))
        valid_until = datetime.fromisoformat(answer["ValidUntilDateTimeOffset"])
        return answer["TemporaryUrl"], valid_until

    async def finalize(self, onboarding_token: str) -> tuple[str, list[OnboardedClient]]:
        """Exchange the token PowerOffice redirected back with (once) for the approving
        user's email and the onboarded clients with their client keys."""
        answer = _json(
            await self._post(f"{API}/Onboarding/Finalize", {"OnboardingToken": onboarding_token})
        )
        clients = [
            OnboardedClient(
                name=item.get("ClientName") or "",
                org_number=item.get("ClientOrganizationNumber") or "",
                client_key=item["ClientKey"],
            )
            for item in answer.get("OnboardedClientsInformation") or []
        ]
        return answer.get("UserEmail") or "", clients

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self._api.request(
            "POST", path, json=body, headers=self._headers, budget=self.budget
        )

    # -- access tokens -----------------------------------------------------------------------

    async def token_for(self, client_key: str) -> AccessToken:
        """The cached access token for this client key, fetched when missing or near expiry."""
        cache_key = _cache_key(client_key)
        token = self._tokens.get(cache_key)
        if token is not None and token.is_fresh(self._clock()):
            return token
        # One token request per client key, however many fetches start at once.
        async with self._creating.setdefault(cache_key, asyncio.Lock()):
            token = self._tokens.get(cache_key)
            if token is None or not token.is_fresh(self._clock()):
                token = self._tokens[cache_key] = await self.fetch_token(client_key)
        return token

    def forget_token(self, client_key: str, stale: AccessToken | None = None) -> None:
        """Drop the cached token (only if it is still `stale`, when given: a fetch running
        alongside may have replaced it already)."""
        cache_key = _cache_key(client_key)
        if stale is None or self._tokens.get(cache_key) == stale:
            self._tokens.pop(cache_key, None)

    async def fetch_token(self, client_key: str) -> AccessToken:
        """A new token; KeyRejected (401 invalid_client) when the client key is not valid."""
        started = self._clock()
        answer = await self._api.request(
            "POST",
            TOKEN_PATH,
            headers=self._headers,
            auth=ClientCredentialsGrant(self._application_key, client_key),
            budget=self.budget,
        )
        body = _json(answer)
        return AccessToken(token=body["access_token"], expires=started + int(body["expires_in"]))

    # -- data ----------------------------------------------------------------------------------

    async def get(
        self, client_key: str, path: str, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """A GET for a client; a token PowerOffice refuses (expired early, revoked) is
        replaced once. A client key refused at the token endpoint is really refused."""
        token = await self.token_for(client_key)
        try:
            return await self._get(token, path, params)
        except KeyRejected:
            self.forget_token(client_key, stale=token)
            return await self._get(await self.token_for(client_key), path, params)

    async def _get(
        self, token: AccessToken, path: str, params: Mapping[str, Any] | None
    ) -> httpx.Response:
        return await self._api.request(
            "GET",
            API + path,
            params=params,
            headers=self._headers,
            auth=BearerAuth(token),
            budget=self.budget,
        )

    async def rows(
        self, client_key: str, path: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every row of a list, page by page (ResourceParameters: PageNumber from 1; an empty
        page answers 204 No Content)."""
        rows: list[dict[str, Any]] = []
        number = 1
        while True:
            paging = {"PageNumber": number, "PageSize": self._page_size}
            answer = await self.get(client_key, path, {**(params or {}), **paging})
            if answer.status_code == 204 or not answer.content:
                return rows
            page = _json(answer)
            rows.extend(page)
            if len(page) < self._page_size:
                return rows
            number += 1


@dataclass(frozen=True)
class Changes:
    """What changed in a client since a moment, by PowerOffice's own timestamps."""

    posting_dates: frozenset[date]  # of account transactions created since
    accounts_changed: bool  # the chart of accounts changed since
    until: datetime  # the newest change seen (else the moment asked about): the next `since`

    @property
    def changed(self) -> bool:
        return bool(self.posting_dates) or self.accounts_changed

    @property
    def months(self) -> list[tuple[int, int]]:
        """(year, month) of each posting date: the months whose movement changed. Later
        months' openings move too; the caller knows which months it keeps."""
        return sorted({(day.year, day.month) for day in self.posting_dates})


@dataclass
class _Cached:
    value: Any
    fetched: float  # monotonic


@dataclass
class _Ledger:
    """What the connector remembers of one client (by client key)."""

    trial_balances: dict[date, _Cached] = field(default_factory=dict)
    years: dict[int, float] = field(default_factory=dict)  # year -> monotonic time loaded
    chart: _Cached | None = None  # list of the chart's rows
    chart_seen: datetime | None = None  # the newest LastChangedDateTimeOffset in it
    chart_checked: float | None = None  # monotonic time the chart's change filter last ran
    unknown_account: bool = False  # a new line names an account the cached chart lacks
    # Account transactions created after this are not yet reflected in `trial_balances`.
    watermark: datetime | None = None
    checked: float | None = None  # monotonic time of the last change check
    changed: set[tuple[int, int]] = field(default_factory=set)  # months seen changed, unasked
    # Moved on by every change check that drops cached figures: a fetch that was under way
    # meanwhile may hold figures from before the change and must not cache them.
    generation: int = 0
    locks: dict[Any, asyncio.Lock] = field(default_factory=dict)

    def lock(self, what: Any) -> asyncio.Lock:
        return self.locks.setdefault(what, asyncio.Lock())


class PowerOfficeConnector:
    system = SYSTEM
    display_name = "PowerOffice Go"
    capabilities = Capabilities(connect=ConnectKind.ONBOARDING, webhooks=False)
    wording = Wording(
        no_api_access=(
            "Integrasjonen er slått av for klienten i PowerOffice Go. En bruker med "
            "administratortilgang på klienten kan slå den på igjen under Innstillinger → "
            "Integrasjoner; trykk deretter Sjekk tilgang på nytt, eller Oppdater klientliste "
            "og godkjenn klienten."
        ),
        access_lost=(
            "Klienten har deaktivert integrasjonen i PowerOffice Go. En bruker med "
            "administratortilgang på klienten kan aktivere den igjen i PowerOffice Go under "
            "Innstillinger → Integrasjoner."
        ),
        no_clients=(
            "Ingen klienter er koblet til ennå. Trykk Oppdater klientliste, logg inn i "
            "PowerOffice Go og huk av klientene som skal kobles til."
        ),
        guide_path="/guide/poweroffice",
    )
    events: tuple[str, ...] = ()  # no webhooks in PowerOffice Go

    def __init__(
        self,
        client: PowerOfficeClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._clock = clock
        self._wall_clock = wall_clock
        self._ledgers: dict[str, _Ledger] = {}
        self._keys_of: dict[int, set[str]] = {}  # CompanyRef.erp_id -> cache keys (forget_cache)

    # -- onboarding ----------------------------------------------------------------------------

    async def initiate(
        self, redirect_uri: str, org_number: str | None = None
    ) -> tuple[str, datetime]:
        return await self._client.initiate(redirect_uri, org_number)

    async def finalize(self, onboarding_token: str) -> tuple[str, list[OnboardedClient]]:
        return await self._client.finalize(onboarding_token)

    async def client_uuid(self, client_key: str) -> str:
        """PowerOffice's own id of the client a key belongs to (ClientIntegrationInformation's
        ClientId): what tells onboarded clients apart, since names and organisation numbers
        can repeat or be missing. Answered also for a client that withdrew its access."""
        answer = _json(await self._client.get(client_key, "/ClientIntegrationInformation"))
        return str(answer["ClientId"])

    async def inspect_key(self, key: str) -> KeyInfo:
        """Check a client key now: a fresh token, and what PowerOffice says of the client.
        PowerOffice v2 has no numeric client id (ClientId is a UUID): erp ids are 0 here,
        for whoever stores onboarded clients to choose."""
        self._client.forget_token(key)
        answer = _json(await self._client.get(key, "/ClientIntegrationInformation"))
        name = answer.get("ClientName") or ""
        return KeyInfo(
            company_id=0,
            company_name=name,
            kind=KeyKind.OWN_COMPANY,
            clients=[RemoteClient(erp_id=0, name=name, org_number="")],
        )

    # -- data ----------------------------------------------------------------------------------

    async def fetch_accounts(
        self, key: str, company: CompanyRef, *, conditional: bool = False
    ) -> list[RemoteAccount] | None:
        ledger = self._ledger(key, company)
        if conditional and ledger.chart is not None and ledger.chart_seen is not None:
            # New accounts come with lines on them (the change check sees those); renames
            # alone are looked for once in CHART_RECHECK_SECONDS: an unchanged poll is then
            # the change check's one request.
            await self._check(key, ledger)
            recent = (
                ledger.chart_checked is not None
                and self._clock() - ledger.chart_checked < CHART_RECHECK_SECONDS
            )
            if recent and not ledger.unknown_account:
                return None
            ledger.chart_checked = self._clock()
            changed = await self._client.get(
                key,
                "/GeneralLedgerAccounts",
                {"lastChangedDateTimeOffsetGreaterThan": _moment(ledger.chart_seen), "PageSize": 1},
            )
            if changed.status_code == 204 or not changed.content:
                return None  # unchanged since we last fetched it
            ledger.chart = None  # refetched whole: accounts may also have gone
        rows = await self._chart(key, ledger, max_age=FRESH_SECONDS)
        return [_remote_account(row) for row in rows]

    async def fetch_balances(
        self,
        key: str,
        company: CompanyRef,
        date_from: date,
        date_to: date,
        *,
        conditional: bool = False,
    ) -> Balances:
        if date_to <= date_from:
            raise ValueError("date_to must be after date_from")
        ledger = self._ledger(key, company)
        days = _boundaries(date_from, date_to)
        max_age = FRESH_SECONDS
        if conditional and any(day in ledger.trial_balances for day in days):
            await self._check(key, ledger)
            if all(day in ledger.trial_balances for day in days):
                return Balances(date_from, date_to, {}, {}, unchanged=True)
            max_age = float("inf")  # what the check left cached is still right
        if not conditional:
            # A full sync (or a month asked for afresh): whole years of lines fill the trial
            # balances of every month end, far fewer requests than one per month end.
            years = range(date_from.year, (date_to - timedelta(days=1)).year + 1)
            await asyncio.gather(*(self._year(key, ledger, year) for year in years))
            max_age = float("inf")  # what the years just filled
        sums = dict(
            zip(
                days,
                await asyncio.gather(*(self._trial_balance(key, ledger, d, max_age) for d in days)),
                strict=True,
            )
        )
        is_balance = await self._classifier(key, ledger, date_from, date_to, sums)
        opening, movement = _period(date_from, date_to, sums, is_balance)
        return Balances(date_from, date_to, opening, movement)

    async def changed_since(self, key: str, since: datetime) -> Changes:
        """What changed in the client after `since` (a PowerOffice timestamp, e.g. the last
        `Changes.until`): new account transactions and changed accounts, two requests. No
        change with accounting effect can be made to a posted voucher in Go, so new
        transactions are what moves balances (a reversal is a new voucher)."""
        created = await self._new_transactions(key, since)
        accounts = await self._client.rows(
            key,
            "/GeneralLedgerAccounts",
            {"lastChangedDateTimeOffsetGreaterThan": _moment(since)},
        )
        until = max(
            [since]
            + [_parse_moment(row["CreatedDateTimeOffset"]) for row in created]
            + [_parse_moment(row["LastChangedDateTimeOffset"]) for row in accounts]
        )
        return Changes(
            posting_dates=frozenset(_day(row["PostingDate"]) for row in created),
            accounts_changed=bool(accounts),
            until=until,
        )

    async def changed_months(self, key: str, company: CompanyRef) -> set[tuple[int, int]]:
        """The months new account transactions were posted in since the last call (one
        request, shared with the conditional fetches of the same sync)."""
        ledger = self._ledger(key, company)
        if ledger.watermark is None:
            return set()  # nothing fetched here yet: every fetch is fresh anyway
        await self._check(key, ledger)
        changed, ledger.changed = ledger.changed, set()
        return changed

    async def fetch_postings(
        self,
        key: str,
        company: CompanyRef,
        account_number: int,
        date_from: date,
        date_to: date,
    ) -> list[RemotePosting]:
        """The account's lines from AccountTransactions (every page); PowerOffice's toDate
        is inclusive, ours exclusive."""
        rows = await self._client.rows(
            key,
            "/AccountTransactions",
            {
                "fromDate": date_from.isoformat(),
                "toDate": (date_to - timedelta(days=1)).isoformat(),
                "accountNos": str(account_number),
            },
        )
        postings = [
            RemotePosting(
                date=_day(row["PostingDate"]),
                voucher_number=str(row.get("VoucherNo") or ""),
                description=row.get("Description") or row.get("VoucherDescription") or "",
                amount=_money(row.get("Amount")),
            )
            for row in rows
            if int(row["AccountNo"]) == account_number
        ]
        return sorted(postings, key=lambda p: p.date)

    def forget_cache(self, company: CompanyRef) -> None:
        for cache_key in self._keys_of.pop(company.erp_id, set()):
            self._ledgers.pop(cache_key, None)

    # -- live changes: PowerOffice Go has no webhooks ---------------------------------------
    # `capabilities.webhooks` is False, so the app polls (changed_since and the conditional
    # fetches) and never calls these.

    async def subscribe(
        self, key: str, company: CompanyRef, event: str, target_url: str, secret: str
    ) -> RemoteSubscription:
        raise NotImplementedError("PowerOffice Go has no webhooks")

    async def renew_subscription(
        self, key: str, company: CompanyRef, erp_id: int
    ) -> RemoteSubscription:
        raise NotImplementedError("PowerOffice Go has no webhooks")

    async def unsubscribe(self, key: str, company: CompanyRef, erp_id: int) -> None:
        raise NotImplementedError("PowerOffice Go has no webhooks")

    async def list_subscriptions(self, key: str, company: CompanyRef) -> list[RemoteSubscription]:
        raise NotImplementedError("PowerOffice Go has no webhooks")

    def read_callback(self, secret: str, headers: dict[str, str], body: bytes) -> ChangeEvent:
        raise NotImplementedError("PowerOffice Go has no webhooks")

    def callback_id(self, headers: dict[str, str]) -> str | None:
        raise NotImplementedError("PowerOffice Go has no webhooks")

    # -- internals -----------------------------------------------------------------------------

    def _ledger(self, key: str, company: CompanyRef) -> _Ledger:
        cache_key = _cache_key(key)
        self._keys_of.setdefault(company.erp_id, set()).add(cache_key)
        return self._ledgers.setdefault(cache_key, _Ledger())

    async def _trial_balance(
        self, key: str, ledger: _Ledger, day: date, max_age: float
    ) -> dict[int, Decimal]:
        """The trial balance including `day`, shared by every fetch that needs it."""
        cached = ledger.trial_balances.get(day)
        if cached is not None and self._clock() - cached.fetched <= max_age:
            return cached.value  # type: ignore[no-any-return]
        async with ledger.lock(day):
            cached = ledger.trial_balances.get(day)
            if cached is not None and self._clock() - cached.fetched <= max_age:
                return cached.value  # type: ignore[no-any-return]
            if ledger.watermark is None:
                ledger.watermark = self._wall_clock() - CLOCK_MARGIN
            fetched, generation = self._clock(), ledger.generation
            rows = await self._client.rows(key, "/TrialBalance", {"date": day.isoformat()})
            sums: dict[int, Decimal] = {}
            for row in rows:
                number = int(row["AccountNo"])
                sums[number] = sums.get(number, ZERO) + _money(row.get("Balance"))
            if generation == ledger.generation:
                ledger.trial_balances[day] = _Cached(sums, fetched)
            return sums

    async def _year(self, key: str, ledger: _Ledger, year: int) -> None:
        """Fill the trial balances of the day before `year` and of each of its month ends:
        one trial balance and the year's account transactions (a page per 5,000 lines),
        instead of a trial balance per month end. Result accounts restart on 1 January, as
        in PowerOffice's own trial balance."""
        loaded = ledger.years.get(year)
        if loaded is not None and self._clock() - loaded <= FRESH_SECONDS:
            return
        async with ledger.lock(("year", year)):
            loaded = ledger.years.get(year)
            if loaded is not None and self._clock() - loaded <= FRESH_SECONDS:
                return
            if ledger.watermark is None:
                ledger.watermark = self._wall_clock() - CLOCK_MARGIN
            fetched, generation = self._clock(), ledger.generation
            before = date(year - 1, 12, 31)
            opening, lines, chart = await asyncio.gather(
                self._trial_balance(key, ledger, before, max_age=FRESH_SECONDS),
                self._client.rows(
                    key,
                    "/AccountTransactions",
                    {"fromDate": date(year, 1, 1).isoformat(), "toDate": f"{year}-12-31"},
                ),
                self._chart(key, ledger, max_age=float("inf")),
            )
            moved: dict[int, dict[int, Decimal]] = {m: {} for m in range(1, 13)}
            for line in lines:
                sums = moved[_day(line["PostingDate"]).month]
                number = int(line["AccountNo"])
                sums[number] = sums.get(number, ZERO) + _money(line.get("Amount"))
            if generation != ledger.generation:
                return  # a change check dropped this year meanwhile: fetched afresh instead
            is_balance = _classify(chart)
            running = {n: amount for n, amount in opening.items() if is_balance(n)}
            for month in range(1, 13):
                for number, amount in moved[month].items():
                    running[number] = running.get(number, ZERO) + amount
                end = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
                ledger.trial_balances[end] = _Cached(dict(running), fetched)
            ledger.years[year] = fetched

    async def _chart(self, key: str, ledger: _Ledger, max_age: float) -> list[dict[str, Any]]:
        cached = ledger.chart
        if cached is not None and self._clock() - cached.fetched <= max_age:
            return cached.value  # type: ignore[no-any-return]
        async with ledger.lock("chart"):
            cached = ledger.chart
            if cached is not None and self._clock() - cached.fetched <= max_age:
                return cached.value  # type: ignore[no-any-return]
            fetched = self._clock()
            rows = await self._client.rows(key, "/GeneralLedgerAccounts")
            ledger.chart = _Cached(rows, fetched)
            ledger.chart_checked, ledger.unknown_account = fetched, False
            moments = [
                _parse_moment(r["LastChangedDateTimeOffset"])
                for r in rows
                if r.get("LastChangedDateTimeOffset")
            ]
            ledger.chart_seen = max(moments) if moments else None
            return rows

    async def _check(self, key: str, ledger: _Ledger) -> None:
        """Drop the cached trial balances new account transactions have moved: one request
        for the client, shared by the conditional fetches of one sync."""
        async with ledger.lock("check"):
            if ledger.checked is not None and self._clock() - ledger.checked <= CHECK_REUSE_SECONDS:
                return
            since = ledger.watermark or (self._wall_clock() - CLOCK_MARGIN)
            checked = self._clock()
            created = await self._new_transactions(key, since)
            if created:
                ledger.changed.update(
                    (day.year, day.month) for day in (_day(r["PostingDate"]) for r in created)
                )
                if ledger.chart is not None:
                    charted = {int(row["AccountNo"]) for row in ledger.chart.value}
                    if any(int(row["AccountNo"]) not in charted for row in created):
                        ledger.unknown_account = True
                earliest = min(_day(row["PostingDate"]) for row in created)
                for day in [d for d in ledger.trial_balances if d >= earliest]:
                    del ledger.trial_balances[day]
                for year in [y for y in ledger.years if y >= earliest.year]:
                    del ledger.years[year]
                ledger.generation += 1
                newest = max(_parse_moment(row["CreatedDateTimeOffset"]) for row in created)
                ledger.watermark = max(since, newest)
            ledger.checked = checked

    async def _new_transactions(self, key: str, since: datetime) -> list[dict[str, Any]]:
        return await self._client.rows(
            key,
            "/AccountTransactions",
            {
                "fromDate": EARLIEST.isoformat(),
                "toDate": LATEST.isoformat(),
                "createdDateTimeOffsetGreaterThan": _moment(since),
            },
        )

    async def _classifier(
        self,
        key: str,
        ledger: _Ledger,
        date_from: date,
        date_to: date,
        sums: dict[date, dict[int, Decimal]],
    ) -> Callable[[int], bool]:
        """Which accounts carry over a year end (balance accounts), by PowerOffice's account
        type. Only a period starting on 1 January or crossing a year end needs it; the chart
        is then fetched once and shared."""
        before = date_from - timedelta(days=1)
        crosses = date_from.year != (date_to - timedelta(days=1)).year
        if not crosses and not (before.year != date_from.year and sums[before]):
            # Within one year and with nothing carried in from the year before, both kinds
            # of account come out the same.
            return _balance_by_number
        return _classify(await self._chart(key, ledger, max_age=float("inf")))


def _classify(chart: list[dict[str, Any]]) -> Callable[[int], bool]:
    """Which accounts carry over a year end (balance accounts), by PowerOffice's type."""
    types = {int(row["AccountNo"]): row.get("GeneralLedgerAccountType") for row in chart}

    def is_balance(number: int) -> bool:
        kind = types.get(number)
        if kind in BALANCE_TYPES:
            return True
        if kind in RESULT_TYPES:
            return False
        return _balance_by_number(number)

    return is_balance


def _balance_by_number(number: int) -> bool:
    """NS 4102: classes 1 and 2 are the balance sheet (used where Go gives no account type)."""
    return number < 3000


def _boundaries(date_from: date, date_to: date) -> list[date]:
    """The trial balance dates a period needs: the day before it, each year end inside it,
    and its last day."""
    last = date_to - timedelta(days=1)
    days = [date_from - timedelta(days=1)]
    days += [date(year, 12, 31) for year in range(date_from.year, last.year)]
    if last not in days:
        days.append(last)
    return days


def _period(
    date_from: date,
    date_to: date,
    sums: Mapping[date, dict[int, Decimal]],
    is_balance: Callable[[int], bool],
) -> tuple[dict[int, Decimal], dict[int, Decimal]]:
    """Opening at `date_from` and movement until `date_to` (exclusive) from trial balances.
    Balance accounts: the difference of the trial balances around the period. Result accounts
    restart on 1 January, so the movement is summed per accounting year."""
    before = date_from - timedelta(days=1)
    last = date_to - timedelta(days=1)
    accounts = set().union(*(sums[day] for day in sums))
    opening: dict[int, Decimal] = {}
    movement: dict[int, Decimal] = {}
    for number in accounts:
        if is_balance(number):
            start = sums[before].get(number, ZERO)
            change = sums[last].get(number, ZERO) - start
            seen = number in sums[before] or number in sums[last]
        else:
            start = sums[before].get(number, ZERO) if before.year == date_from.year else ZERO
            change, seen = ZERO, before.year == date_from.year and number in sums[before]
            for year in range(date_from.year, last.year + 1):
                end = last if year == last.year else date(year, 12, 31)
                change += sums[end].get(number, ZERO) - (start if year == date_from.year else ZERO)
                seen = seen or number in sums[end]
        if seen:
            opening[number] = start
            movement[number] = change
    return opening, movement


def _money(value: Any) -> Decimal:
    if value is None:
        return ZERO
    # JSON numbers arrive as Decimal already (parse_float); a string or int is converted.
    return (value if isinstance(value, Decimal) else Decimal(str(value))).quantize(ZERO)


def _moment(moment: datetime) -> str:
    """A DateTimeOffset for a query: always with its offset (Go compares instants)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.isoformat(timespec="microseconds")


def _parse_moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(text: str) -> date:
    return date.fromisoformat(text[:10])


def _remote_account(item: dict[str, Any]) -> RemoteAccount:
    return RemoteAccount(
        erp_id=int(item["Id"]),
        number=int(item["AccountNo"]),
        name=item.get("Name") or "",
        type=item.get("GeneralLedgerAccountType") or "",
        is_inactive=item.get("IsActive") is False,
        vat_code=item.get("VatCode") or None,
    )


@dataclass(frozen=True)
class PowerOfficeSettings:
    """POWEROFFICE_BASE_URL (the API host; `/v2` and `/OAuth/Token` are under it),
    POWEROFFICE_APPLICATION_KEY (our integration's) and POWEROFFICE_SUBSCRIPTION_KEY.
    Outside demo mode the system is offered only when both keys are set: an installation
    without a PowerOffice agreement runs without it."""

    base_url: str
    application_key: str
    subscription_key: str
    system: str = SYSTEM

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, demo: bool, port: int
    ) -> PowerOfficeSettings | None:
        if demo:  # the simulator, served beside the app
            base_url = env.get("POWEROFFICE_BASE_URL") or f"http://127.0.0.1:{port}/poweroffice"
            application_key = env.get("POWEROFFICE_APPLICATION_KEY") or DEMO_APPLICATION_KEY
            subscription_key = env.get("POWEROFFICE_SUBSCRIPTION_KEY") or DEMO_SUBSCRIPTION_KEY
        else:
            names = ("POWEROFFICE_APPLICATION_KEY", "POWEROFFICE_SUBSCRIPTION_KEY")
            if not any(env.get(name, "").strip() for name in names):
                return None  # not set up in this installation
            base_url = env.get("POWEROFFICE_BASE_URL") or PRODUCTION_BASE_URL
            application_key = _required(env, names[0], DEMO_APPLICATION_KEY)
            subscription_key = _required(env, names[1], DEMO_SUBSCRIPTION_KEY)
        if not base_url.startswith(("http://", "https://")):
            raise SettingsError("POWEROFFICE_BASE_URL must start with http:// or https://")
        return cls(
            base_url=base_url.rstrip("/"),
            application_key=application_key,
            subscription_key=subscription_key,
        )

    def connector(self, http: httpx.AsyncBaseTransport, metrics: Metrics) -> PowerOfficeConnector:
        return PowerOfficeConnector(
            PowerOfficeClient(
                http,
                base_url=self.base_url,
                application_key=self.application_key,
                subscription_key=self.subscription_key,
                metrics=metrics,
            )
        )


def _required(env: Mapping[str, str], name: str, demo_value: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required with the other PowerOffice Go key")
    if value == demo_value:
        raise SettingsError(f"{name} is the demo key; set your own")
    return value
