"""The Tripletex simulator, driven over HTTP; every /v2 response is checked against the spec."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

import httpx
import pytest
import uvicorn

from simulators.tripletex import SimulatorState, create_simulator_app, seed_demo
from simulators.tripletex.generate import is_valid_org_number
from simulators.tripletex.render import Renderer
from tests.tripletex_spec import spec_validator

pytestmark = [pytest.mark.anyio, pytest.mark.database_agnostic]

TODAY = date(2025, 11, 20)
CONSUMER = "demo-consumer-token"
ACCOUNTANT = "demo-regnskapskontor"
OWN_COMPANY = "demo-eget-selskap"
PREFIX = "/tripletex"
VALIDATOR = spec_validator()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@cache
def shared_state() -> SimulatorState:
    """One seed for the tests that only read; tests that change the world seed their own."""
    return seed_demo(TODAY)


@dataclass
class Sim:
    state: SimulatorState
    http: httpx.AsyncClient

    async def session(self, employee_token: str = ACCOUNTANT, days: int = 2) -> str:
        response = await self.create_session(employee_token, TODAY + timedelta(days=days))
        assert response.status_code == 200, response.text
        return response.json()["value"]["token"]

    async def create_session(self, employee: str, expires: Any, **extra: str) -> httpx.Response:
        params = {"consumerToken": CONSUMER, "employeeToken": employee, "expirationDate": expires}
        return await self.http.put("/token/session/:create", params={**params, **extra})

    async def get(self, path: str, token: str, company: int = 0, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, auth=httpx.BasicAuth(str(company), token))

    async def values(self, path: str, token: str, company: int = 0, **params: Any) -> list[Any]:
        response = await self.get(path, token, company, **params)
        assert response.status_code == 200, response.text
        return response.json(parse_float=Decimal)["values"]


AMOUNT_WITHOUT_TWO_DECIMALS = re.compile(
    r'"(balance[A-Z]\w*|amount\w*)":-?\d+(\.\d?|\.\d{3,})?[,}]'
)


async def _check_response(response: httpx.Response) -> None:
    if "/v2" in response.request.url.path:
        assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["x-tlx-request-id"])
        # Amounts are JSON numbers with exactly two decimals: no float artefacts on the wire.
        assert not AMOUNT_WITHOUT_TWO_DECIMALS.search((await response.aread()).decode())


def _client(app: Any, base_url: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app) if app is not None else None
    hooks = {"response": [_check_response]}
    return httpx.AsyncClient(transport=transport, base_url=base_url, event_hooks=hooks)


def _app(state: SimulatorState, problems: list[str]) -> Any:
    def check(method: str, path: str, status: int, body: bytes) -> None:
        problems.extend(VALIDATOR.validate(method, path, status, body))

    return create_simulator_app(state, prefix=PREFIX, on_response=check)


async def _open(state: SimulatorState) -> AsyncIterator[Sim]:
    """Every /v2 response of a test is checked against the spec; problems fail at teardown."""
    problems: list[str] = []
    async with _client(_app(state, problems), f"http://sim{PREFIX}/v2") as http:
        yield Sim(state, http)
    assert not problems, "\n".join(problems[:20])


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    async for opened in _open(shared_state()):
        yield opened


@pytest.fixture
async def fresh() -> AsyncIterator[Sim]:
    async for opened in _open(seed_demo(TODAY)):
        yield opened


def _error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["status"], body["code"]) == (status, code)
    assert body["requestId"] == response.headers["x-tlx-request-id"]
    return body


async def test_session_and_who_am_i(sim: Sim) -> None:
    token = await sim.session()
    me = (await sim.get("/token/session/>whoAmI", token)).json()["value"]
    office = sim.state.office_company_id
    assert me["companyId"] == office
    assert me["company"] == {"id": office, "url": f"http://sim{PREFIX}/v2/company/{office}"}
    client = (await sim.values("/company/>withLoginAccess", token))[0]
    as_client = await sim.get("/token/session/>whoAmI", token, client["id"], fields="*,company(*)")
    value = as_client.json()["value"]
    assert value["company"]["name"] == client["name"]
    assert value["employeeIsProxy"] is True
    assert value["actualEmployeeId"] == me["employeeId"]


async def test_error_responses(sim: Sim) -> None:
    _error(await sim.create_session(ACCOUNTANT, TODAY, consumerToken="nope"), 401, 3000)
    _error(await sim.create_session("no-such-key", TODAY), 401, 3000)
    for expires, field_name in (("2025-13-01", "expirationDate"), (TODAY - timedelta(1), "")):
        body = _error(await sim.create_session(ACCOUNTANT, expires), 422, 15000)
        assert body["validationMessages"][0]["field"] == "expirationDate", field_name
    missing = await sim.http.put("/token/session/:create", params={"consumerToken": CONSUMER})
    assert _error(missing, 422, 15000)["validationMessages"][0]["field"] == "employeeToken"
    _error(await sim.http.get("/ledger/account"), 401, 3000)
    _error(await sim.get("/ledger/account", "not-a-session"), 401, 3000)
    _error(await sim.http.get("/ledger/account", headers={"Authorization": "Basic !!"}), 401, 3000)
    _error(await sim.get("/no/such/endpoint", await sim.session()), 404, 6000)
    _error(await sim.http.delete("/ledger/account"), 405, 4000)
    health = await sim.http.get(f"http://sim{PREFIX}/_sim/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


async def test_session_expiry_and_key_revocation(fresh: Sim) -> None:
    token = await fresh.session(days=1)
    for day, status in ((0, 200), (1, 200), (2, 401)):  # valid through its expiration date
        fresh.state.today = TODAY + timedelta(days=day)
        assert (await fresh.get("/token/session/>whoAmI", token)).status_code == status
    fresh.state.today = TODAY
    token = await fresh.session(days=5)
    fresh.state.revoke_key(ACCOUNTANT)
    _error(await fresh.get("/ledger/account", token), 401, 3000)


async def test_forbidden_companies(sim: Sim) -> None:
    token = await sim.session()
    _error(await sim.get("/ledger/account", token, 999_999), 403, 9000)
    own_key = await sim.session(OWN_COMPANY)
    some_client = sim.state.clients_of(ACCOUNTANT)[0].id
    _error(await sim.get("/ledger/account", own_key, some_client), 403, 9000)

    locked = sim.state.no_api_access_client_id
    listed = await sim.values("/company/>withLoginAccess", token)
    assert locked in {c["id"] for c in listed}
    period = {"dateFrom": "2025-01-01", "dateTo": "2025-02-01"}
    calls: Any = (("/ledger/account", {}), ("/balanceSheet", period), ("/ledger/posting", period))
    for path, params in calls:
        _error(await sim.get(path, token, locked, **params), 403, 9000)
    assert (await sim.get("/ledger/account", token, some_client)).status_code == 200


async def test_with_login_access_pages(sim: Sim) -> None:
    token, path = await sim.session(), "/company/>withLoginAccess"
    full = (await sim.get(path, token)).json()
    assert full["fullResultSize"] == full["count"] == len(full["values"]) == 42
    ids = [c["id"] for c in full["values"]]
    assert ids == sorted(ids)
    pages, digests = [], set()
    for start in range(0, 50, 10):
        page = (await sim.get(path, token, **{"from": start, "count": 10})).json()
        assert page["from"] == start and page["fullResultSize"] == 42
        assert page["count"] == len(page["values"]) == min(10, 42 - start)
        pages += page["values"]
        digests.add(page["versionDigest"])
    assert pages == full["values"]
    assert digests == {full["versionDigest"]}  # a digest of the whole result, not the page
    _error(await sim.get(path, token, **{"from": -1}), 422, 15000)


async def test_client_names_and_org_numbers(sim: Sim) -> None:
    token = await sim.session()
    fields = "id,name,organizationNumber,type"
    clients = await sim.values("/company/>withLoginAccess", token, fields=fields)
    names = {c["name"] for c in clients}
    for special in ("Bakeriet <Søt & Salt> AS", '"Ærlig" Økonomi DA', "Fjord & Fjell Regnskap AS"):
        assert special in names
    joined = "".join(names)
    assert all(char in joined for char in "&<>'\"æøåÆØÅ")
    assert {"AS", "ENK", "DA", "ANS"} <= {c["type"] for c in clients}
    numbers = [c["organizationNumber"] for c in clients]
    assert len(set(numbers)) == len(numbers)
    assert all(n[0] in "89" and is_valid_org_number(n) for n in numbers)
    assert sim.state.company(sim.state.no_api_access_client_id).name in names


async def test_own_company_key(sim: Sim) -> None:
    token = await sim.session(OWN_COMPANY)
    listing = (await sim.get("/company/>withLoginAccess", token)).json()
    assert (listing["fullResultSize"], listing["values"]) == (0, [])
    me = (await sim.get("/token/session/>whoAmI", token, fields="company(name)")).json()["value"]
    assert me == {"company": {"name": "Regnskapshuset Demo AS"}}
    assert len(await sim.values("/ledger/account", token)) > 60  # its own chart of accounts


async def test_fields_filter(sim: Sim) -> None:
    token = await sim.session()
    client = sim.state.clients_of(ACCOUNTANT)[0].id
    whole = (await sim.values("/ledger/account", token, client, number="3000"))[0]
    assert {"id", "version", "url", "vatType", "saftCode", "groupingCode"} <= whole.keys()
    assert "changes" not in whole
    assert whole["vatType"] == {"id": 3, "url": f"http://sim{PREFIX}/v2/ledger/vatType/3"}

    async def one(fields: str) -> dict[str, Any]:
        return (await sim.values("/ledger/account", token, client, number="3000", fields=fields))[0]

    assert await one("id,name") == {"id": whole["id"], "name": "Salgsinntekt, avgiftspliktig"}
    assert await one("vatType") == {"vatType": whole["vatType"]}
    assert await one("vatType(number,percentage)") == {"vatType": {"number": "3", "percentage": 25}}
    expanded = await one("number,vatType(*)")
    assert expanded["vatType"]["name"] == "Utgående avgift, høy sats" and expanded["number"]
    assert (await one("*,changes"))["changes"][0]["changeType"] == "CREATE"
    assert await one("legalVatTypes(number)") == {
        "legalVatTypes": [{"number": n} for n in ("3", "31", "33", "5", "6")]
    }
    response = await sim.get("/ledger/account", token, client, fields="id,noSuchField")
    assert "noSuchField" in _error(response, 400, 11000)["message"]
    _error(await sim.get("/ledger/account", token, client, fields="id,vatType(id"), 400, 11000)


async def test_accounts(sim: Sim) -> None:
    token = await sim.session()
    client = sim.state.clients_of(ACCOUNTANT)[3].id
    accounts = await sim.values("/ledger/account", token, client)
    assert 60 <= len(accounts) <= 80
    numbers = [a["number"] for a in accounts]
    assert numbers == sorted(numbers)
    assert {1500, 1920, 2050, 2400, 2700, 3000, 5000, 8050} <= set(numbers)
    banks = await sim.values("/ledger/account", token, client, isBankAccount="true")
    assert [a["number"] for a in banks] == [1920, 1950]
    assert all(re.fullmatch(r"\d{11}", a["bankAccountNumber"]) for a in banks)
    assert len(await sim.values("/ledger/account", token, client, isInactive="true")) == 2
    picked = await sim.values("/ledger/account", token, client, number="1500,2400", fields="number")
    assert picked == [{"number": 1500}, {"number": 2400}]


async def test_balance_sheet_ties_out(sim: Sim) -> None:
    token = await sim.session()
    clients = sim.state.clients_of(ACCOUNTANT)
    end = TODAY + timedelta(days=31)  # includes the first of next month, closing this month
    months = [date(y, m, 1) for y in range(end.year - 2, end.year + 1) for m in range(1, 13)]
    months = [m for m in months if date(TODAY.year - 1, 1, 1) <= m <= end]
    for client in (clients[0], clients[7], clients[-1]):
        balance_ids = {a.id for a in client.accounts if a.number < 3000}
        closing: dict[int, Decimal] = {}  # balance accounts' balanceOut of the previous month
        for start, end in itertools.pairwise(months):
            rows = await sim.values("/balanceSheet", token, client.id, dateFrom=start, dateTo=end)
            assert sum(r["balanceOut"] for r in rows) == 0, (client.name, start)
            opening = {r["account"]["id"]: r["balanceIn"] for r in rows}
            for row in rows:
                assert row["balanceOut"] == row["balanceIn"] + row["balanceChange"]
                if start.month == 1 and row["account"]["id"] not in balance_ids:
                    assert row["balanceIn"] == 0  # result accounts restart every year
            for account_id, balance in closing.items():
                assert opening.get(account_id, 0) == balance, (client.name, start, account_id)
            closing = {
                r["account"]["id"]: r["balanceOut"]
                for r in rows
                if r["account"]["id"] in balance_ids
            }
        long_period = await sim.values(
            "/balanceSheet", token, client.id, dateFrom="2024-03-15", dateTo=TODAY
        )
        assert sum(r["balanceOut"] for r in long_period) == 0


async def test_balance_sheet_matches_postings(sim: Sim) -> None:
    token = await sim.session()
    client = sim.state.clients_of(ACCOUNTANT)[5].id
    period = {"dateFrom": "2025-03-01", "dateTo": "2025-04-01"}
    rows = await sim.values(
        "/balanceSheet", token, client, fields="account(id),balanceChange", **period
    )
    postings = await sim.values(
        "/ledger/posting", token, client, fields="account(id),amount", **period
    )
    moved: dict[int, Decimal] = {}
    for posting in postings:
        key = posting["account"]["id"]
        moved[key] = moved.get(key, Decimal(0)) + posting["amount"]
    changes = {r["account"]["id"]: r["balanceChange"] for r in rows}
    assert {k: v for k, v in changes.items() if v} == {k: v for k, v in moved.items() if v}


async def test_balance_sheet_validation(sim: Sim) -> None:
    token = await sim.session()
    client = sim.state.clients_of(ACCOUNTANT)[0].id
    cases = [("", "2025-02-01", "dateFrom"), ("2025-02-30", "2025-03-01", "dateFrom")]
    cases += [("2025-02-01", "01.03.2025", "dateTo"), ("2025-02-01", "2025-02-01", "dateTo")]
    for start, end, field_name in cases:
        response = await sim.get("/balanceSheet", token, client, dateFrom=start, dateTo=end)
        assert _error(response, 422, 15000)["validationMessages"][0]["field"] == field_name
    before_history = {"dateFrom": "2019-01-01", "dateTo": "2019-02-01"}
    assert await sim.values("/balanceSheet", token, client, **before_history) == []
    idle = {"includeActiveAccountsWithoutMovements": "true", "accountNumberFrom": "1900"}
    rows = await sim.values(
        "/balanceSheet", token, client, accountNumberTo="2000", **idle, **before_history
    )
    assert [r["account"]["id"] for r in rows] and all(r["balanceOut"] == 0 for r in rows)


async def test_grant_and_revoke_clients(fresh: Sim) -> None:
    token = await fresh.session()
    before = (await fresh.get("/company/>withLoginAccess", token)).json()
    control = f"http://sim{PREFIX}/_sim"
    granted = await fresh.http.post(f"{control}/grant-client", json={"employeeToken": ACCOUNTANT})
    new = granted.json()
    assert granted.status_code == 201 and new["name"] not in {c["name"] for c in before["values"]}
    assert is_valid_org_number(new["organizationNumber"])
    after = (await fresh.get("/company/>withLoginAccess", token)).json()
    assert after["fullResultSize"] == before["fullResultSize"] + 1
    assert after["versionDigest"] != before["versionDigest"]
    assert after["values"][-1]["id"] == new["id"]
    period = {"dateFrom": "2025-01-01", "dateTo": "2025-06-01"}
    assert await fresh.values("/balanceSheet", token, new["id"], **period)
    another = fresh.state.grant_new_client(ACCOUNTANT)
    assert another.id != new["id"] and another.name != new["name"]
    assert len(fresh.state.clients_of(ACCOUNTANT)) == 44

    revoke = {"employeeToken": ACCOUNTANT, "companyId": new["id"]}
    assert (await fresh.http.post(f"{control}/revoke-client", json=revoke)).status_code == 204
    remaining = await fresh.values("/company/>withLoginAccess", token, fields="id")
    assert new["id"] not in {c["id"] for c in remaining} and len(remaining) == 43
    _error(await fresh.get("/ledger/account", token, new["id"]), 403, 9000)


def test_seed_is_deterministic_and_balanced() -> None:
    def fingerprint(state: SimulatorState) -> list[Any]:
        companies = state.companies.values()
        return [
            (c.id, c.name, c.organization_number, [p.amount for p in c.postings()])
            for c in companies
        ]

    again = seed_demo(TODAY)
    assert fingerprint(again) == fingerprint(shared_state())
    for company in again.companies.values():
        for voucher in company.vouchers:
            assert sum(p.amount for p in voucher.postings) == 0 and voucher.date <= TODAY


def test_spec_validator_catches_bad_bodies() -> None:
    def problems(body: Any, status: int = 200, path: str = "/ledger/account") -> list[str]:
        return VALIDATOR.validate("GET", path, status, body)

    page = {"fullResultSize": 1, "from": 0, "count": 1, "versionDigest": "x"}
    assert problems({**page, "values": [{"id": 1, "number": 1920, "vatType": {"id": 1}}]}) == []
    assert problems({"values": [{"number": "1920"}]})  # wrong type
    assert problems({"values": [{"nummer": 1920}]})  # a property the spec does not declare
    assert problems({"values": [{"name": None}]})  # null, which this spec never allows
    assert problems(b'{"status": "401"}', 401)  # error bodies are ApiError
    assert problems(b"not json") and problems({}, path="/no/such/path")


def test_dtos_declare_exactly_the_spec_properties() -> None:
    state, render = shared_state(), Renderer("http://sim/v2")
    client = state.clients_of(ACCOUNTANT)[0]
    voucher, account = client.vouchers[0], client.accounts[0]
    employee = state.employees[state.key(ACCOUNTANT).employee_id]
    row = state.balance_sheet(client.id, TODAY, TODAY + timedelta(1))[0]
    dtos = {
        "Client": render.client(client),
        "Company": render.company(client),
        "Account": render.account(account, True),
        "VatType": render.vat_type(3),
        "Currency": render.currency(),
        "Country": render.country(),
        "Address": render.address(client.address),
        "Employee": render.employee(employee, client.created_at),
        "LoggedInUserInfo": render.logged_in_user(employee, employee, client),
        "BalanceSheetAccount": render.balance_row(row, True),
        "Voucher": render.voucher(voucher),
        "Posting": render.posting(voucher.postings[0], voucher, account),
    }
    schemas = VALIDATOR.spec["components"]["schemas"]
    for name, dto in dtos.items():
        assert list(dto) == list(schemas[name]["properties"]), name


async def test_over_real_http() -> None:
    problems: list[str] = []
    config = uvicorn.Config(_app(shared_state(), problems), host="127.0.0.1", port=0)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}{PREFIX}/v2"
        async with _client(None, base) as http:
            sim = Sim(shared_state(), http)
            listing = (await sim.get("/company/>withLoginAccess", await sim.session())).json()
            first = listing["values"][0]
            assert first["url"] == f"{base}/company/{first['id']}"
            assert listing["fullResultSize"] == 42
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)
    assert not problems, problems
