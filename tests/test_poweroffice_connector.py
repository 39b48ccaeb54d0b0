"""The PowerOffice Go connector against the PowerOffice Go simulator (ASGI, in process):
onboarding, tokens, exact balances for every month of the kept window, errors, retries and
the change check. Requests are counted at the transport; every answer is checked against
PowerOffice's v2 spec."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from services.connectors import poweroffice
from services.connectors.base import (
    AccessDenied,
    CompanyRef,
    ConnectKind,
    Connector,
    ErpUnavailable,
    KeyRejected,
)
from services.connectors.poweroffice import (
    PowerOfficeClient,
    PowerOfficeConnector,
    PowerOfficeSettings,
)
from services.metrics import Metrics
from services.settings import SettingsError
from simulators.poweroffice import (
    DEMO_APPLICATION_KEY,
    DEMO_SUBSCRIPTION_KEY,
    DEMO_USER_EMAIL,
    PowerOfficeState,
    create_poweroffice_app,
    seed_demo,
)
from simulators.poweroffice.chart import is_balance_account
from simulators.poweroffice.generate import WITHDRAWN_NAME
from simulators.poweroffice.model import Client
from tests.poweroffice_spec import spec_validator

pytestmark = [pytest.mark.anyio, pytest.mark.database_agnostic]

TODAY = date(2025, 11, 20)
PREFIX = "/poweroffice"
FRESH = poweroffice.FRESH_SECONDS + 1
BASE = f"http://sim{PREFIX}"
REDIRECT = "https://erp.example/poweroffice/ferdig?state=s1"
ZERO = Decimal("0.00")
# The kept window as the sync engine has it (services/sync/periods.py): every month of the
# current and the previous year up to this month.
WINDOW = [
    (year, month)
    for year in (TODAY.year - 1, TODAY.year)
    for month in range(1, 13)
    if (year, month) <= (TODAY.year, TODAY.month)
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CountingTransport(httpx.AsyncBaseTransport):
    """The simulator behind httpx's ASGI transport, keeping (method, path, query) of each."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str, dict[str, list[str]]]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(PREFIX)
        self.seen.append((request.method, path, parse_qs(request.url.query.decode())))
        return await self.inner.handle_async_request(request)

    def count(self, path: str | None = None) -> int:
        return sum(1 for _, seen, _ in self.seen if path is None or seen == path)

    def reset(self) -> None:
        self.seen.clear()


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    state: PowerOfficeState
    transport: CountingTransport
    client: PowerOfficeClient
    connector: PowerOfficeConnector
    clock: Clock  # the connector's and the client's monotonic clock
    web: httpx.AsyncClient  # the user's browser and the test's hand on the control API
    keys: dict[int, str] = field(default_factory=dict)  # simulator client id -> client key

    async def onboard(self, client_ids: list[int]) -> tuple[str, list[poweroffice.OnboardedClient]]:
        url, valid_until = await self.connector.initiate(REDIRECT)
        assert valid_until > self.state.clock.now()
        page = await self.web.get(url)
        assert page.status_code == 200
        token = parse_qs(urlsplit(url).query)["token"][0]
        form = {"token": token, "action": "approve", "client": [str(i) for i in client_ids]}
        answer = await self.web.post(f"{PREFIX}/ApiAuthV2", data=form)
        assert answer.status_code == 302
        redirect = parse_qs(urlsplit(answer.headers["location"]).query)
        assert redirect["status"] == ["Success"] and redirect["state"] == ["s1"]
        email, clients = await self.connector.finalize(redirect["token"][0])
        for onboarded in clients:
            found = next(c for c in self.state.clients.values() if c.org_no == onboarded.org_number)
            self.keys[found.id] = onboarded.client_key
        return email, clients


@pytest.fixture
async def world() -> AsyncIterator[World]:
    state = seed_demo(TODAY)
    validator = spec_validator()
    problems: list[str] = []

    def check(method: str, path: str, status: int, body: bytes) -> None:
        if path in validator.spec["paths"]:
            problems.extend(validator.validate(method, path, status, body))

    app = create_poweroffice_app(state, prefix=PREFIX, on_response=check)
    transport = CountingTransport(httpx.ASGITransport(app=app))
    clock = Clock()
    client = PowerOfficeClient(
        transport,
        base_url=BASE,
        application_key=DEMO_APPLICATION_KEY,
        subscription_key=DEMO_SUBSCRIPTION_KEY,
        backoff=0.001,
        clock=clock,
    )
    # The simulator's clock is pinned to TODAY: the connector's wall clock follows it.
    connector = PowerOfficeConnector(client, clock=clock, wall_clock=state.clock.now)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sim"
    ) as web:
        yield World(state, transport, client, connector, clock, web)
    assert not problems, "\n".join(problems[:20])


def _month(year: int, month: int) -> tuple[date, date]:
    start = date(year, month, 1)
    end = date(year + month // 12, month % 12 + 1, 1)
    return start, end


def _expected(
    client: Client, start: date, end: date
) -> tuple[dict[int, Decimal], dict[int, Decimal]]:
    """Opening and movement straight from the simulator's vouchers: balance accounts over all
    history, result accounts from 1 January."""
    opening: dict[int, Decimal] = {}
    movement: dict[int, Decimal] = {}
    for voucher in client.vouchers:
        day = voucher.posting_date
        for line in voucher.lines:
            if day < start:
                if is_balance_account(line.account_no) or day.year == start.year:
                    opening[line.account_no] = opening.get(line.account_no, ZERO) + line.amount
            elif day < end:
                movement[line.account_no] = movement.get(line.account_no, ZERO) + line.amount
    return opening, movement


def _nonzero(values: dict[int, Decimal]) -> dict[int, Decimal]:
    return {number: value for number, value in values.items() if value != 0}


async def _full_sync(world: World, client_id: int) -> dict[tuple[int, int], object]:
    """What the sync engine does for a full sync: the chart and every month of the window,
    at most four at a time (its per-key slots)."""
    key = world.keys[client_id]
    company = CompanyRef(erp_id=client_id)
    slots = asyncio.Semaphore(4)

    async def month(year: int, number: int) -> object:
        async with slots:
            start, end = _month(year, number)
            return await world.connector.fetch_balances(key, company, start, end)

    async def chart() -> object:
        async with slots:
            return await world.connector.fetch_accounts(key, company)

    answers = await asyncio.gather(chart(), *(month(y, m) for y, m in WINDOW))
    return {"chart": answers[0], **dict(zip(WINDOW, answers[1:], strict=True))}  # type: ignore[dict-item]


# -- onboarding and settings ---------------------------------------------------------------


async def test_onboarding_gives_a_client_key_per_approved_client(world: World) -> None:
    email, clients = await world.onboard([1, 2])
    assert email == DEMO_USER_EMAIL
    assert sorted(c.name for c in clients) == sorted(world.state.clients[i].name for i in (1, 2))
    for onboarded in clients:
        sim = next(c for c in world.state.clients.values() if c.name == onboarded.name)
        assert onboarded.org_number == sim.org_no and onboarded.client_key == sim.client_key
    assert world.transport.count("/v2/Onboarding/Initiate") == 1
    assert world.transport.count("/v2/Onboarding/Finalize") == 1
    for method, _, _ in world.transport.seen:
        assert method == "POST"


def test_connector_shape_and_settings() -> None:
    assert (poweroffice.DEMO_APPLICATION_KEY, poweroffice.DEMO_SUBSCRIPTION_KEY) == (
        DEMO_APPLICATION_KEY,
        DEMO_SUBSCRIPTION_KEY,
    )
    settings = PowerOfficeSettings.from_env({}, demo=True, port=8123)
    assert settings.base_url == "http://127.0.0.1:8123/poweroffice"
    assert settings.application_key == DEMO_APPLICATION_KEY
    connector = settings.connector(httpx.MockTransport(lambda r: httpx.Response(500)), Metrics())
    assert isinstance(connector, Connector)
    assert connector.system == "poweroffice" and connector.display_name == "PowerOffice Go"
    assert connector.capabilities.connect is ConnectKind.ONBOARDING
    assert connector.capabilities.webhooks is False
    assert "PowerOffice Go" in connector.wording.access_lost

    with pytest.raises(SettingsError, match="POWEROFFICE_APPLICATION_KEY"):
        PowerOfficeSettings.from_env({"POWEROFFICE_SUBSCRIPTION_KEY": "s"}, demo=False, port=1)
    with pytest.raises(SettingsError, match="POWEROFFICE_SUBSCRIPTION_KEY"):
        PowerOfficeSettings.from_env({"POWEROFFICE_APPLICATION_KEY": "a"}, demo=False, port=1)
    with pytest.raises(SettingsError, match="POWEROFFICE_BASE_URL"):
        PowerOfficeSettings.from_env({"POWEROFFICE_BASE_URL": "ftp://x"}, demo=True, port=1)
    # Without either key the installation simply does not offer PowerOffice Go.
    assert PowerOfficeSettings.from_env({}, demo=False, port=1) is None
    real = PowerOfficeSettings.from_env(
        {"POWEROFFICE_APPLICATION_KEY": "a", "POWEROFFICE_SUBSCRIPTION_KEY": "s"},
        demo=False,
        port=1,
    )
    assert real is not None and real.base_url == "https://goapi.poweroffice.net"


async def test_webhook_methods_are_not_implemented(world: World) -> None:
    with pytest.raises(NotImplementedError):
        await world.connector.subscribe("k", CompanyRef(erp_id=1), "e", "https://x", "s")
    with pytest.raises(NotImplementedError):
        world.connector.read_callback("s", {}, b"")


# -- data ----------------------------------------------------------------------------------


async def test_a_full_sync_is_exact_for_every_month_and_costs_5_requests(world: World) -> None:
    await world.onboard([1, 2])
    for client_id in (1, 2):
        sim = world.state.clients[client_id]
        world.transport.reset()
        synced = await _full_sync(world, client_id)
        requests = world.transport.count()
        # One token, the chart, the trial balance before the window, and each year's
        # account transactions (one page each here): not a trial balance per month end
        # (26 requests, what a month at a time would cost).
        assert world.transport.count("/OAuth/Token") == 1
        assert world.transport.count("/v2/GeneralLedgerAccounts") == 1
        assert world.transport.count("/v2/TrialBalance") == 1
        assert world.transport.count("/v2/AccountTransactions") == 2
        assert requests == 5

        accounts = synced["chart"]
        assert [(a.number, a.name, a.erp_id) for a in accounts] == [  # type: ignore[attr-defined]
            (a.account_no, a.name, a.id)
            for a in sorted(sim.accounts.values(), key=lambda a: a.account_no)
        ]
        for year, month in WINDOW:
            balances = synced[(year, month)]
            start, end = _month(year, month)
            opening, movement = _expected(sim, start, end)
            assert _nonzero(balances.opening) == _nonzero(opening), (client_id, year, month)  # type: ignore[attr-defined]
            assert _nonzero(balances.movement) == _nonzero(movement), (client_id, year, month)  # type: ignore[attr-defined]
            for value in [*balances.opening.values(), *balances.movement.values()]:  # type: ignore[attr-defined]
                assert isinstance(value, Decimal) and value == value.quantize(ZERO)
            # And what the simulator's TrialBalance says at the month's last day.
            closing = world.state.trial_balance(sim, end - timedelta(days=1))
            for number, value in closing.items():
                assert (
                    balances.opening.get(number, ZERO) + balances.movement.get(number, ZERO)
                    == value
                )  # type: ignore[attr-defined]


async def test_transactions_instead_would_cost_one_page_plus_one_trial_balance(
    world: World,
) -> None:
    """The alternative measured: every account transaction of the window in pages of
    MaxPageSize, plus the trial balance before it for the openings."""
    await world.onboard([1, 2])
    for client_id in (1, 2):
        world.transport.reset()
        rows = await world.client.rows(
            world.keys[client_id],
            "/AccountTransactions",
            {"fromDate": f"{TODAY.year - 1}-01-01", "toDate": TODAY.isoformat(), "PageSize": 20000},
        )
        lines = sum(len(v.lines) for v in world.state.clients[client_id].vouchers)
        assert len(rows) == lines < 20000
        assert world.transport.count("/v2/AccountTransactions") == 1


async def test_tokens_are_reused_and_refetched_when_expired(world: World) -> None:
    await world.onboard([1])
    key, company = world.keys[1], CompanyRef(erp_id=1)
    world.transport.reset()
    await world.connector.fetch_accounts(key, company)
    await world.connector.fetch_balances(key, company, date(2025, 3, 1), date(2025, 4, 1))
    assert world.transport.count("/OAuth/Token") == 1

    world.state.expire_tokens()  # PowerOffice refuses the cached token: 401, a new one, once
    world.clock.now += FRESH  # past what one sync shares: this fetch asks PowerOffice again
    world.transport.reset()
    balances = await world.connector.fetch_balances(
        key, company, date(2025, 5, 1), date(2025, 6, 1)
    )
    assert balances.movement
    assert world.transport.count("/OAuth/Token") == 1
    # The year's trial balance and transactions, and the one or two the API refused (the
    # two run at once).
    year = world.transport.count("/v2/TrialBalance") + world.transport.count(
        "/v2/AccountTransactions"
    )
    assert 3 <= year <= 4

    world.clock.now += 1200  # the token's lifetime: replaced before use, without a 401
    world.transport.reset()
    await world.connector.fetch_accounts(key, company)
    assert world.transport.count("/OAuth/Token") == 1 and world.transport.count() == 2


async def test_an_unknown_client_key_is_rejected(world: World) -> None:
    with pytest.raises(KeyRejected):
        await world.connector.fetch_accounts(
            "00000000-0000-0000-0000-000000000000", CompanyRef(erp_id=9)
        )


async def test_a_withdrawn_client_raises_access_denied(world: World) -> None:
    withdrawn = world.state.client_by_name(WITHDRAWN_NAME)
    await world.onboard([withdrawn.id])
    key = world.keys[withdrawn.id]
    with pytest.raises(AccessDenied) as caught:
        await world.connector.fetch_accounts(key, CompanyRef(erp_id=withdrawn.id))
    assert caught.value.status == 403 and "Integrasjoner" in str(caught.value)
    info = await world.connector.inspect_key(key)  # still answers, to explain the 403
    assert info.company_name == WITHDRAWN_NAME


async def test_a_429_is_retried_after_retry_after(world: World) -> None:
    await world.onboard([1])
    world.state.set_faults(rate_limit=1, rate_period_seconds=1.0)
    key, company = world.keys[1], CompanyRef(erp_id=1)
    world.transport.reset()
    accounts = await world.connector.fetch_accounts(key, company)  # token, then chart: 429
    assert accounts
    assert world.transport.count("/v2/GeneralLedgerAccounts") == 2
    assert world.client.budget.waited >= 0.9  # Retry-After: 1 held every request back


async def test_5xx_are_retried_then_erp_unavailable(world: World) -> None:
    await world.onboard([1])
    key, company = world.keys[1], CompanyRef(erp_id=1)
    world.state.set_faults(error_rate=1.0, error_kinds=["503"])
    world.transport.reset()
    with pytest.raises(ErpUnavailable) as caught:
        await world.connector.fetch_accounts(key, company)
    assert caught.value.status == 503 and world.transport.count() == 3  # 1 + 2 retries

    # A third of all requests failing (5xx, timeouts, 429s) still ends exact.
    world.state.set_faults(
        error_rate=0.3, error_kinds=["500", "502", "503", "timeout"], timeout_delay_seconds=0.0
    )
    world.client._api._retry = poweroffice.RetryPolicy(max_retries=6, backoff=0.001)
    sim = world.state.clients[1]
    for year, month in [(2024, 1), (2025, 6)]:
        start, end = _month(year, month)
        balances = await world.connector.fetch_balances(key, company, start, end)
        opening, movement = _expected(sim, start, end)
        assert _nonzero(balances.opening) == _nonzero(opening)
        assert _nonzero(balances.movement) == _nonzero(movement)


async def test_a_posted_voucher_is_seen_and_an_unchanged_poll_costs_one_request(
    world: World,
) -> None:
    await world.onboard([1])
    key, company = world.keys[1], CompanyRef(erp_id=1)
    since = world.state.clock.now()
    await _full_sync(world, 1)

    # An unchanged client: the change check is two small requests.
    world.transport.reset()
    changes = await world.connector.changed_since(key, since)
    assert not changes.changed and changes.until == since
    assert world.transport.count() == 2

    # A poll as the sync engine makes it: the chart and the two recent months, conditional.
    async def poll() -> list[object]:
        recent = [_month(2025, 10), _month(2025, 11)]
        return await asyncio.gather(
            world.connector.fetch_accounts(key, company, conditional=True),
            *(
                world.connector.fetch_balances(key, company, s, e, conditional=True)
                for s, e in recent
            ),
        )

    # The first poll checks against our clock less a margin (CLOCK_MARGIN): today's seeded
    # vouchers, created minutes before the sync, cost November's month end once more.
    world.clock.now += 600  # the next poll interval
    world.transport.reset()
    chart, october, november = await poll()
    assert chart is None and october.unchanged and not november.unchanged  # type: ignore[attr-defined]
    assert world.transport.count() == 2
    world.clock.now += 600
    world.transport.reset()
    chart, october, november = await poll()
    assert chart is None and october.unchanged and november.unchanged  # type: ignore[attr-defined]
    # One request (the change check), and the access token's renewal (it lives 20 minutes:
    # every other poll).
    assert world.transport.count() - world.transport.count("/OAuth/Token") == 1
    assert world.transport.count("/OAuth/Token") == 1
    world.clock.now += 600
    world.transport.reset()
    chart, october, november = await poll()
    assert chart is None and october.unchanged and november.unchanged  # type: ignore[attr-defined]
    assert world.transport.count() == 1

    # A voucher posted in October through the simulator's control API, a minute later.
    world.state.clock.advance(60)
    posted = await world.web.post(
        f"{PREFIX}/_sim/clients/1/vouchers",
        json={
            "date": "2025-10-15",
            "lines": [
                {"AccountNo": 1920, "Amount": "1234.56"},
                {"AccountNo": 3000, "Amount": "-1234.56"},
            ],
        },
    )
    assert posted.status_code == 201
    world.transport.reset()
    changes = await world.connector.changed_since(key, since)
    assert changes.changed and changes.months == [(2025, 10)] and changes.until > since
    assert world.transport.count() == 2
    again = await world.connector.changed_since(key, changes.until)
    assert not again.changed

    world.clock.now += 600
    world.transport.reset()
    chart, october, november = await poll()
    assert chart is None and not october.unchanged and not november.unchanged  # type: ignore[attr-defined]
    sim = world.state.clients[1]
    for balances, (year, month) in [(october, (2025, 10)), (november, (2025, 11))]:
        opening, movement = _expected(sim, *_month(year, month))
        assert _nonzero(balances.opening) == _nonzero(opening)  # type: ignore[attr-defined]
        assert _nonzero(balances.movement) == _nonzero(movement)  # type: ignore[attr-defined]
    # The check and the two month ends after the voucher's date (and the token, renewed
    # every other poll): its lines name known accounts, so the chart is not asked.
    assert world.transport.count("/v2/TrialBalance") == 2
    assert world.transport.count() - world.transport.count("/OAuth/Token") == 3

    # A renamed account shows in the chart's change filter, which polls ask once an hour.
    world.state.save_account(1, 1920, "Driftskonto")
    world.clock.now += 600
    assert await world.connector.fetch_accounts(key, company, conditional=True) is None
    world.clock.now += poweroffice.CHART_RECHECK_SECONDS
    accounts = await world.connector.fetch_accounts(key, company, conditional=True)
    assert accounts is not None and any(a.name == "Driftskonto" for a in accounts)

    # A new account with a line on it: the next poll fetches the chart, well within the hour.
    world.state.clock.advance(60)
    world.state.save_account(1, 6540, "Inventar")
    world.state.post_voucher(1, [(6540, Decimal("99.00")), (1920, Decimal("-99.00"))])
    world.clock.now += 600
    balances = await world.connector.fetch_balances(
        key, company, *_month(2025, 11), conditional=True
    )
    assert balances.movement.get(6540) == Decimal("99.00")
    accounts = await world.connector.fetch_accounts(key, company, conditional=True)
    assert accounts is not None and any(a.number == 6540 for a in accounts)


async def test_periods_across_a_year_end_and_forget_cache(world: World) -> None:
    await world.onboard([2])
    key, company = world.keys[2], CompanyRef(erp_id=2)
    sim = world.state.clients[2]
    for start, end in [
        (date(2024, 11, 1), date(2025, 2, 1)),
        (date(2024, 1, 1), date(2025, 1, 1)),
        (date(2024, 3, 15), date(2025, 11, 21)),
    ]:
        balances = await world.connector.fetch_balances(key, company, start, end)
        opening, movement = _expected(sim, start, end)
        assert _nonzero(balances.opening) == _nonzero(opening), (start, end)
        assert _nonzero(balances.movement) == _nonzero(movement), (start, end)

    # After a failed sync nothing cached answers a conditional fetch: it fetches again.
    world.connector.forget_cache(company)
    world.transport.reset()
    again = await world.connector.fetch_balances(
        key, company, date(2024, 11, 1), date(2025, 2, 1), conditional=True
    )
    assert not again.unchanged and world.transport.count("/v2/TrialBalance") == 3
