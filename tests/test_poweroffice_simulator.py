"""The PowerOffice Go simulator, driven over HTTP (ASGI); every API response is checked
against PowerOffice's v2 spec and every amount on the wire has exactly two decimals."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from simulators.poweroffice import (
    DEMO_APPLICATION_KEY,
    DEMO_SUBSCRIPTION_KEY,
    DEMO_USER_EMAIL,
    SUBSCRIPTION_HEADER,
    PowerOfficeState,
    create_poweroffice_app,
    seed_demo,
)
from simulators.poweroffice.chart import is_balance_account, is_valid_org_number
from simulators.poweroffice.generate import WITHDRAWN_NAME
from tests.poweroffice_spec import spec_validator

pytestmark = [pytest.mark.anyio, pytest.mark.database_agnostic]

TODAY = date(2025, 11, 20)
PREFIX = "/poweroffice"
REDIRECT = "https://erp.example/poweroffice/ferdig?state=abc%26def"
KEY_HEADERS = {SUBSCRIPTION_HEADER: DEMO_SUBSCRIPTION_KEY}
# An amount property whose JSON number lacks exactly two decimals (float artefacts, "12.5").
BAD_AMOUNT = re.compile(r'"(Amount|CurrencyAmount|Balance)":-?\d+(\.\d?|\.\d{3,})?[,}]')


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Sim:
    state: PowerOfficeState
    http: httpx.AsyncClient

    async def initiate(self, org_no: str | None = None) -> str:
        body = {"ApplicationKey": DEMO_APPLICATION_KEY, "RedirectUri": REDIRECT}
        if org_no:
            body["ClientOrganizationNo"] = org_no
        response = await self.http.post("/v2/Onboarding/Initiate", json=body, headers=KEY_HEADERS)
        assert response.status_code == 200, response.text
        return response.json()["TemporaryUrl"]

    async def answer(self, url: str, action: str, client_ids: list[int]) -> dict[str, list[str]]:
        page = await self.http.get(url)
        assert page.status_code == 200, page.text
        token = parse_qs(urlsplit(url).query)["token"][0]
        form = {"token": token, "action": action, "client": [str(i) for i in client_ids]}
        response = await self.http.post("/ApiAuthV2", data=form)
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith("https://erp.example/poweroffice/ferdig?")
        return parse_qs(urlsplit(location).query)

    async def finalize(self, token: str) -> httpx.Response:
        body = {"OnboardingToken": token}
        return await self.http.post("/v2/Onboarding/Finalize", json=body, headers=KEY_HEADERS)

    async def onboard(self, client_ids: list[int]) -> dict[int, str]:
        """Client id → client key, through the whole onboarding."""
        redirect = await self.answer(await self.initiate(), "approve", client_ids)
        response = await self.finalize(redirect["token"][0])
        assert response.status_code == 200, response.text
        keys = {
            i["ClientName"]: i["ClientKey"] for i in response.json()["OnboardedClientsInformation"]
        }
        return {self.state.client_by_name(name).id: key for name, key in keys.items()}

    async def token(self, client_key: str, **headers: str) -> httpx.Response:
        return await self.http.post(
            "/OAuth/Token",
            data={"grant_type": "client_credentials"},
            auth=(DEMO_APPLICATION_KEY, client_key),
            headers={**KEY_HEADERS, **headers},
        )

    async def access(self, client_id: int) -> str:
        key = (await self.onboard([client_id]))[client_id]
        response = await self.token(key)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def get(self, path: str, access: str, **params: Any) -> httpx.Response:
        headers = {**KEY_HEADERS, "Authorization": f"Bearer {access}"}
        return await self.http.get(f"/v2{path}", params=params, headers=headers)

    async def rows(self, path: str, access: str, **params: Any) -> list[dict[str, Any]]:
        """Every page of a list, read with exact Decimals."""
        rows: list[dict[str, Any]] = []
        size = int(params.pop("PageSize", 5000))
        for number in range(1, 1000):
            response = await self.get(path, access, PageNumber=number, PageSize=size, **params)
            if response.status_code == 204:
                return rows
            assert response.status_code == 200, response.text
            page = response.json(parse_float=Decimal)
            rows.extend(page)
            if len(page) < size:
                return rows
        raise AssertionError("endless paging")


async def _check_amounts(response: httpx.Response) -> None:
    assert not BAD_AMOUNT.search((await response.aread()).decode())


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    state = seed_demo(TODAY)
    validator = spec_validator()
    problems: list[str] = []

    def check(method: str, path: str, status: int, body: bytes) -> None:
        if path in validator.spec["paths"]:
            problems.extend(validator.validate(method, path, status, body))
        elif path != "/OAuth/Token":  # not in the v2 spec; checked by the tests themselves
            problems.append(f"{method} {path} -> {status}: not an operation of the spec")

    app = create_poweroffice_app(state, prefix=PREFIX, on_response=check)
    transport = httpx.ASGITransport(app=app)
    hooks = {"response": [_check_amounts]}
    base = f"http://sim{PREFIX}"
    async with httpx.AsyncClient(transport=transport, base_url=base, event_hooks=hooks) as http:
        yield Sim(state, http)
    assert not problems, "\n".join(problems[:20])


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    return body


# -- the seed ------------------------------------------------------------------------------


def test_seed_is_deterministic_and_looks_norwegian() -> None:
    one, two = seed_demo(TODAY), seed_demo(TODAY)
    assert len(one.clients) == 20
    for a, b in zip(one.clients.values(), two.clients.values(), strict=True):
        assert (a.name, a.org_no, a.client_id) == (b.name, b.org_no, b.client_id)
        assert [
            (v.id, v.created, [(x.account_no, x.amount) for x in v.lines]) for v in a.vouchers
        ] == [(v.id, v.created, [(x.account_no, x.amount) for x in v.lines]) for v in b.vouchers]
    names = [c.name for c in one.clients.values()]
    assert any("&" in n for n in names) and any(ch in "".join(names) for ch in "æøå")
    assert all(is_valid_org_number(c.org_no) for c in one.clients.values())
    assert len({c.org_no for c in one.clients.values()}) == 20
    assert [c.name for c in one.clients.values() if c.access_withdrawn] == [WITHDRAWN_NAME]
    for client in one.clients.values():
        years = {v.posting_date.year for v in client.vouchers}
        assert years == {TODAY.year - 1, TODAY.year}
        for voucher in client.vouchers:
            assert sum(line.amount for line in voucher.lines) == 0
            assert all(
                line.amount == line.amount.quantize(Decimal("0.01")) for line in voucher.lines
            )
            assert voucher.created <= voucher.last_changed <= one.clock.now()


# -- onboarding ----------------------------------------------------------------------------


async def test_onboarding_approve_gives_a_client_key_per_chosen_client(sim: Sim) -> None:
    response = await sim.http.post(
        "/v2/Onboarding/Initiate",
        json={"ApplicationKey": DEMO_APPLICATION_KEY, "RedirectUri": REDIRECT},
        headers=KEY_HEADERS,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["TemporaryUrl"].startswith(f"http://sim{PREFIX}/ApiAuthV2?token=")
    assert datetime.fromisoformat(body["ValidUntilDateTimeOffset"]) > sim.state.clock.now()

    page = await sim.http.get(body["TemporaryUrl"])
    assert "Smørås &amp; Sønner AS" in page.text and page.text.count('type="checkbox"') == 20

    chosen = [1, 3, 13]
    redirect = await sim.answer(body["TemporaryUrl"], "approve", chosen)
    assert redirect["status"] == ["Success"] and redirect["state"] == ["abc&def"]
    finalized = await sim.finalize(redirect["token"][0])
    assert finalized.status_code == 200
    result = finalized.json()
    assert result["UserEmail"] == DEMO_USER_EMAIL
    onboarded = result["OnboardedClientsInformation"]
    assert sorted(i["ClientName"] for i in onboarded) == sorted(
        sim.state.clients[i].name for i in chosen
    )
    for info in onboarded:
        client = sim.state.client_by_name(info["ClientName"])
        assert (info["ClientKey"], info["ClientOrganizationNumber"]) == (
            client.client_key,
            client.org_no,
        )

    # The onboarding token works once.
    _problem(await sim.finalize(redirect["token"][0]), 400)
    # Re-onboarding a client keeps its key.
    again = await sim.onboard([1])
    assert again[1] == sim.state.clients[1].client_key


async def test_onboarding_refused_or_expired_stores_nothing(sim: Sim) -> None:
    url = await sim.initiate()
    redirect = await sim.answer(url, "refuse", [1, 2])
    assert redirect["status"] == ["Canceled"] and "token" not in redirect
    assert all(c.client_key is None for c in sim.state.clients.values())
    assert (await sim.http.get(url)).status_code == 410  # the TemporaryUrl is spent

    # Approving with nothing ticked asks again.
    url = await sim.initiate()
    token = parse_qs(urlsplit(url).query)["token"][0]
    response = await sim.http.post("/ApiAuthV2", data={"token": token, "action": "approve"})
    assert response.status_code == 400 and "Velg minst én klient" in response.text

    # An unknown organisation number comes straight back as ClientNotFound.
    response = await sim.http.get(await sim.initiate(org_no="999999999"))
    assert response.status_code == 302
    assert parse_qs(urlsplit(response.headers["location"]).query)["status"] == ["ClientNotFound"]

    # An onboarding token unused for longer than it lives is refused.
    redirect = await sim.answer(await sim.initiate(), "approve", [2])
    sim.state.clock.advance(11 * 60)
    _problem(await sim.finalize(redirect["token"][0]), 400)
    assert sim.state.clients[2].client_key is None

    # A TemporaryUrl older than its ValidUntil is refused.
    url = await sim.initiate()
    sim.state.clock.advance(16 * 60)
    assert (await sim.http.get(url)).status_code == 410


async def test_onboarding_for_one_organisation_number_offers_only_that_client(sim: Sim) -> None:
    client = sim.state.clients[5]
    url = await sim.initiate(org_no=client.org_no)
    page = await sim.http.get(url)
    assert page.text.count('type="checkbox"') == 1
    redirect = await sim.answer(url, "approve", [5])
    assert (await sim.finalize(redirect["token"][0])).status_code == 200
    _problem(
        await sim.http.post(
            "/v2/Onboarding/Initiate",
            json={
                "ApplicationKey": "00000000-0000-4000-8000-000000000000",
                "RedirectUri": REDIRECT,
            },
            headers=KEY_HEADERS,
        ),
        400,
    )


# -- the token endpoint -------------------------------------------------------------------


async def test_token_endpoint_requires_keys(sim: Sim) -> None:
    key = (await sim.onboard([1]))[1]
    good = await sim.token(key)
    assert good.status_code == 200 and good.headers["cache-control"] == "no-store"
    body = good.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1200 and body["access_token"]

    wrong = await sim.token("7b0f3c1e-0000-4000-8000-000000000000")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    no_subscription = await sim.http.post(
        "/OAuth/Token",
        data={"grant_type": "client_credentials"},
        auth=(DEMO_APPLICATION_KEY, key),
    )
    _problem(no_subscription, 401)
    grant = await sim.http.post(
        "/OAuth/Token",
        data={"grant_type": "password"},
        auth=(DEMO_APPLICATION_KEY, key),
        headers=KEY_HEADERS,
    )
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"


async def test_access_tokens_expire_and_need_the_subscription_key(sim: Sim) -> None:
    access = await sim.access(1)
    assert (await sim.get("/ClientIntegrationInformation", access)).status_code == 200
    missing = await sim.http.get(
        "/v2/ClientIntegrationInformation", headers={"Authorization": f"Bearer {access}"}
    )
    _problem(missing, 401)
    _problem(await sim.get("/ClientIntegrationInformation", "not-a-token"), 401)
    sim.state.clock.advance(1200)
    _problem(await sim.get("/GeneralLedgerAccounts", access), 401)

    sim.state.set_faults(token_lifetime_seconds=60)
    key = sim.state.clients[1].client_key
    assert key is not None
    short = await sim.token(key)
    assert short.json()["expires_in"] == 60
    access = short.json()["access_token"]
    sim.state.clock.advance(59)
    assert (await sim.get("/GeneralLedgerAccounts", access)).status_code == 200
    sim.state.clock.advance(1)
    _problem(await sim.get("/GeneralLedgerAccounts", access), 401)


# -- data ----------------------------------------------------------------------------------


async def test_trial_balance_equals_the_sum_of_account_transactions(sim: Sim) -> None:
    access = await sim.access(4)
    accounts = await sim.rows("/GeneralLedgerAccounts", access)
    numbers = {a["AccountNo"] for a in accounts}
    assert {1500, 1920, 2400, 2700, 3000, 4000, 6300, 7700} <= numbers
    everything = await sim.rows(
        "/AccountTransactions", access, fromDate="2024-01-01", toDate="2025-12-31", PageSize=150
    )
    assert len(everything) > 300  # several pages
    assert [t["Id"] for t in everything] == sorted({t["Id"] for t in everything})
    for day in (date(2024, 3, 31), date(2024, 12, 31), date(2025, 1, 1), date(2025, 10, 15)):
        expected: dict[int, Decimal] = {}
        for row in everything:
            posted = date.fromisoformat(row["PostingDate"])
            counts = is_balance_account(row["AccountNo"]) or posted.year == day.year
            if posted <= day and counts:
                expected[row["AccountNo"]] = (
                    expected.get(row["AccountNo"], Decimal(0)) + row["Amount"]
                )
        lines = await sim.rows("/TrialBalance", access, date=day.isoformat())
        assert {line["AccountNo"]: line["Balance"] for line in lines} == expected
        assert all(isinstance(line["Balance"], Decimal) for line in lines)

    # Filters: inclusive dates and account number ranges.
    january = await sim.rows(
        "/AccountTransactions",
        access,
        fromDate="2025-01-01",
        toDate="2025-01-31",
        accountNos="1000-1999, 2700, 7000-",
    )
    assert january == [
        row
        for row in everything
        if "2025-01-01" <= row["PostingDate"] <= "2025-01-31"
        and (
            1000 <= row["AccountNo"] <= 1999
            or row["AccountNo"] in (2700,)
            or row["AccountNo"] >= 7000
        )
    ]
    only_bank = await sim.rows("/TrialBalance", access, date="2025-06-30", accountNos="1920")
    assert [line["AccountNo"] for line in only_bank] == [1920]
    assert (
        await sim.get("/AccountTransactions", access, fromDate="2030-01-01", toDate="2030-01-31")
    ).status_code == 204
    _problem(await sim.get("/TrialBalance", access), 400)
    _problem(await sim.get("/AccountTransactions", access, fromDate="2025-01-01", toDate="x"), 400)
    _problem(await sim.get("/GeneralLedgerAccounts", access, PageSize=20001), 400)


async def test_a_posted_voucher_changes_balances_and_shows_in_the_change_filters(sim: Sim) -> None:
    access = await sim.access(2)
    before = await sim.rows("/TrialBalance", access, date=TODAY.isoformat())
    mark = sim.state.clock.last_stamp
    assert mark is not None
    since = mark.isoformat()
    assert (
        await sim.rows(
            "/AccountTransactions",
            access,
            fromDate="2024-01-01",
            toDate="2025-12-31",
            createdDateTimeOffsetGreaterThan=since,
        )
        == []
    )

    response = await sim.http.post(
        "/_sim/clients/2/vouchers",
        json={
            "date": "2025-11-03",
            "lines": [
                {"AccountNo": 6300, "Amount": "12345.67"},
                {"AccountNo": 1920, "Amount": "-12345.67"},
            ],
        },
    )
    assert response.status_code == 201, response.text
    voucher = response.json()
    assert datetime.fromisoformat(voucher["CreatedDateTimeOffset"]) > mark

    after = await sim.rows("/TrialBalance", access, date=TODAY.isoformat())
    change = {
        line["AccountNo"]: line["Balance"]
        - next((b["Balance"] for b in before if b["AccountNo"] == line["AccountNo"]), Decimal(0))
        for line in after
    }
    assert {k: v for k, v in change.items() if v} == {
        6300: Decimal("12345.67"),
        1920: Decimal("-12345.67"),
    }
    earlier = await sim.rows("/TrialBalance", access, date="2025-11-02")
    assert earlier == await sim.rows("/TrialBalance", access, date="2025-11-02")

    new = await sim.rows(
        "/AccountTransactions",
        access,
        fromDate="2024-01-01",
        toDate="2025-12-31",
        createdDateTimeOffsetGreaterThan=since,
    )
    assert [(t["AccountNo"], t["Amount"]) for t in new] == [
        (6300, Decimal("12345.67")),
        (1920, Decimal("-12345.67")),
    ]
    changed = await sim.rows(
        "/AccountTransactions",
        access,
        fromDate="2024-01-01",
        toDate="2025-12-31",
        lastChangedDateTimeOffsetGreaterThan=since,
    )
    assert changed == new

    # Editing a description moves LastChanged only; an unbalanced voucher is refused.
    stamp = new[0]["LastChangedDateTimeOffset"]
    edited = await sim.http.patch(
        f"/_sim/clients/2/vouchers/{voucher['VoucherNo']}", json={"description": "Husleie november"}
    )
    assert edited.status_code == 200
    changed = await sim.rows(
        "/AccountTransactions",
        access,
        fromDate="2025-11-01",
        toDate="2025-11-30",
        lastChangedDateTimeOffsetGreaterThan=stamp,
    )
    assert {t["Description"] for t in changed} == {"Husleie november"}
    created = await sim.rows(
        "/AccountTransactions",
        access,
        fromDate="2025-11-01",
        toDate="2025-11-30",
        createdDateTimeOffsetGreaterThan=stamp,
    )
    assert created == []
    unbalanced = await sim.http.post(
        "/_sim/clients/2/vouchers",
        json={
            "lines": [{"AccountNo": 6300, "Amount": "1.00"}, {"AccountNo": 1920, "Amount": "-0.99"}]
        },
    )
    _problem(unbalanced, 400)

    # Accounts: a renamed account shows with the change filter.
    renamed = await sim.http.put("/_sim/clients/2/accounts/6300", json={"name": "Husleie"})
    assert renamed.status_code == 200
    fresh = await sim.rows(
        "/GeneralLedgerAccounts", access, lastChangedDateTimeOffsetGreaterThan=stamp
    )
    assert [(a["AccountNo"], a["Name"]) for a in fresh] == [(6300, "Husleie")]


# -- errors --------------------------------------------------------------------------------


async def test_withdrawn_access_answers_403_and_integration_information_says_why(sim: Sim) -> None:
    withdrawn = sim.state.client_by_name(WITHDRAWN_NAME)
    access = await sim.access(withdrawn.id)
    body = _problem(await sim.get("/TrialBalance", access, date="2025-01-31"), 403)
    assert "Integrasjoner" in body["detail"]
    info = await sim.get("/ClientIntegrationInformation", access)
    assert info.status_code == 200 and info.json()["ValidPrivileges"] == []

    assert (await sim.http.post(f"/_sim/clients/{withdrawn.id}/restore")).status_code == 200
    assert (await sim.get("/TrialBalance", access, date="2025-01-31")).status_code == 200
    assert (await sim.http.post(f"/_sim/clients/{withdrawn.id}/withdraw")).status_code == 200
    _problem(await sim.get("/GeneralLedgerAccounts", access), 403)


async def test_rate_limit_answers_429_with_retry_after(sim: Sim) -> None:
    access = await sim.access(1)
    now = [100.0]
    sim.state.rate_clock = lambda: now[0]
    faults = await sim.http.post("/_sim/faults", json={"rate_limit": 3, "rate_period_seconds": 2})
    assert faults.status_code == 200 and faults.json()["rate_limit"] == 3
    for _ in range(3):
        assert (await sim.get("/ClientIntegrationInformation", access)).status_code == 200
    limited = await sim.get("/ClientIntegrationInformation", access)
    _problem(limited, 429)
    assert limited.headers["retry-after"] == "2"
    now[0] += 2
    assert (await sim.get("/ClientIntegrationInformation", access)).status_code == 200


async def test_injected_faults_and_latency(sim: Sim) -> None:
    access = await sim.access(1)
    await sim.http.post("/_sim/faults", json={"error_rate": 1, "error_kinds": ["503"]})
    _problem(await sim.get("/GeneralLedgerAccounts", access), 503)
    await sim.http.post("/_sim/faults", json={"error_kinds": ["429"]})
    assert _problem(await sim.get("/GeneralLedgerAccounts", access), 429)
    await sim.http.post(
        "/_sim/faults", json={"error_rate": 0.5, "error_kinds": ["500", "502"], "fault_seed": 7}
    )
    statuses = [
        (await sim.get("/ClientIntegrationInformation", access)).status_code for _ in range(20)
    ]
    assert set(statuses) == {200, 500, 502}
    await sim.http.post("/_sim/faults", json={"fault_seed": 7, "error_rate": 0.5})
    again = [
        (await sim.get("/ClientIntegrationInformation", access)).status_code for _ in range(20)
    ]
    assert again == statuses  # same seed, same failures
    bad = await sim.http.post("/_sim/faults", json={"error_rate": 2})
    _problem(bad, 400)
    await sim.http.post("/_sim/faults", json={"error_rate": 0, "latency_seconds": 0.05})
    started = sim.state.rate_clock()
    assert (await sim.get("/ClientIntegrationInformation", access)).status_code == 200
    assert sim.state.rate_clock() - started >= 0.05
    expired = await sim.http.post("/_sim/expire-tokens")
    assert expired.status_code == 204
    _problem(await sim.get("/ClientIntegrationInformation", access), 401)


async def test_unknown_paths_and_the_validator_itself(sim: Sim) -> None:
    access = await sim.access(1)
    response = await sim.get("/generalledgeraccounts", access)  # routes ignore case
    assert response.status_code == 200
    validator = spec_validator()
    good = response.json()
    assert validator.validate("GET", "/GeneralLedgerAccounts", 200, good) == []
    assert validator.validate("GET", "/GeneralLedgerAccounts", 200, [{**good[0], "Invented": 1}])
    assert validator.validate("GET", "/TrialBalance", 200, [{"AccountNo": 1920, "Balance": "1.00"}])
    assert validator.validate(
        "GET", "/AccountTransactions", 200, [{"CreatedDateTimeOffset": "2025-01-01 10:00"}]
    )
    assert validator.validate("GET", "/TrialBalance", 403, {"Status": "x"})
