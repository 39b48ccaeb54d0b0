"""The simulator as a live Tripletex: pacing and faults, conditional GET, a changing ledger,
webhook subscriptions and signed deliveries. Every /v2 response is checked against the spec."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar, Request, Response, post

from simulators.tripletex import SimulatorState, create_simulator_app, seed_demo
from simulators.tripletex.render import Renderer
from tests.conftest import Simulator
from tests.tripletex_spec import spec_validator

pytestmark = [pytest.mark.anyio, pytest.mark.database_agnostic]

TODAY = date(2025, 11, 20)
CONSUMER = "demo-consumer-token"
ACCOUNTANT = "demo-regnskapskontor"
OWN_COMPANY = "demo-eget-selskap"
VALIDATOR = spec_validator()
NOVEMBER = {"dateFrom": "2025-11-01", "dateTo": "2025-12-01"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Live:
    state: SimulatorState
    http: httpx.AsyncClient
    control: str  # the control API's base URL

    async def token(self, employee: str = ACCOUNTANT) -> str:
        params = {
            "consumerToken": CONSUMER,
            "employeeToken": employee,
            "expirationDate": (self.state.today + timedelta(days=2)).isoformat(),
        }
        response = await self.http.put("/token/session/:create", params=params)
        assert response.status_code == 200, response.text
        return str(response.json()["value"]["token"])

    async def call(
        self, method: str, path: str, token: str, company: int = 0, **kwargs: Any
    ) -> httpx.Response:
        auth = httpx.BasicAuth(str(company), token)
        return await self.http.request(method, path, auth=auth, **kwargs)

    async def get(
        self, path: str, token: str, company: int = 0, headers: Any = None, **params: Any
    ) -> httpx.Response:
        return await self.call("GET", path, token, company, params=params, headers=headers)

    async def values(self, path: str, token: str, company: int = 0, **params: Any) -> list[Any]:
        response = await self.get(path, token, company, **params)
        assert response.status_code == 200, response.text
        return list(response.json(parse_float=Decimal)["values"])

    def client(self, index: int = 0) -> int:
        return self.state.clients_of(ACCOUNTANT)[index].id


@asynccontextmanager
async def open_live(state: SimulatorState) -> AsyncIterator[Live]:
    """The simulator in this test's event loop (ASGI transport); spec problems fail the test."""
    problems: list[str] = []

    def check(method: str, path: str, status: int, body: bytes) -> None:
        problems.extend(VALIDATOR.validate(method, path, status, body))

    app = create_simulator_app(state, on_response=check)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim/v2") as http:
        yield Live(state, http, "http://sim/_sim")
    await state.webhooks.aclose()
    assert not problems, "\n".join(problems[:20])


@pytest.fixture
async def live() -> AsyncIterator[Live]:
    async with open_live(seed_demo(TODAY)) as opened:
        yield opened


@dataclass
class Receiver:
    """A webhook target on a real port: records every callback, answers with `status`."""

    url: str = ""
    status: int = 200
    calls: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def wait_for(self, count: int, seconds: float = 5.0) -> None:
        deadline = time.monotonic() + seconds
        while len(self.calls) < count:
            assert time.monotonic() < deadline, f"{len(self.calls)} of {count} callbacks came"
            await asyncio.sleep(0.01)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()

    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> Response[bytes]:
        found.calls.append((dict(request.headers), await request.body()))
        return Response(b"", status_code=found.status)

    app = Litestar([hook], openapi_config=None, logging_config=None)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    found.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/hook"
    yield found
    server.should_exit = True
    await asyncio.wait_for(task, 5)


def error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code)
    return body


def rate_headers(response: httpx.Response) -> tuple[str, str, str]:
    h = response.headers
    return h["X-Rate-Limit-Limit"], h["X-Rate-Limit-Remaining"], h["X-Rate-Limit-Reset"]


# -- pacing and faults ----------------------------------------------------------------------


async def test_rate_limit_headers_and_429_until_reset(live: Live) -> None:
    now = [1000.0]
    live.state.clock = lambda: now[0]
    settings = await live.http.post(
        f"{live.control}/faults", json={"rate_limit": 3, "rate_period_seconds": 10}
    )
    assert settings.json()["rate_limit"] == 3 and settings.json()["rate_period_seconds"] == 10
    token, own = await live.token(), await live.token(OWN_COMPANY)  # :create is not counted
    # One budget per consumer and employee token: acting for a client spends the same one.
    seen = [await live.get("/token/session/>whoAmI", token, c) for c in (0, live.client(), 0)]
    assert [r.status_code for r in seen] == [200, 200, 200]
    assert [rate_headers(r) for r in seen] == [("3", str(n), "10") for n in (2, 1, 0)]

    now[0] += 4.2
    limited = await live.get("/ledger/account", token, live.client())
    error(limited, 429, 1000)
    assert rate_headers(limited) == ("3", "0", "6")  # whole seconds left, rounded up
    now[0] += 5.7
    assert (await live.get("/token/session/>whoAmI", token)).status_code == 429
    other_key = await live.get("/token/session/>whoAmI", own)
    assert other_key.status_code == 200 and rate_headers(other_key) == ("3", "2", "10")
    unauthenticated = await live.get("/token/session/>whoAmI", "no-such-token")
    assert (
        unauthenticated.status_code == 401 and "X-Rate-Limit-Limit" not in unauthenticated.headers
    )

    now[0] += 0.1  # the period is over: a fresh budget
    fresh = await live.get("/token/session/>whoAmI", token)
    assert fresh.status_code == 200 and rate_headers(fresh) == ("3", "2", "10")

    await live.http.post(f"{live.control}/faults", json={"rate_limit": None})
    unlimited = await live.get("/token/session/>whoAmI", token)
    assert unlimited.status_code == 200 and int(rate_headers(unlimited)[1]) > 10_000


async def test_error_rate_is_deterministic_and_changes_nothing() -> None:
    async def statuses(seed: int) -> list[tuple[int, str | None]]:
        async with open_live(seed_demo(TODAY)) as live:
            token = await live.token()
            live.state.set_faults(
                error_rate=0.5, fault_seed=seed, error_kinds=("500", "503", "429")
            )
            seen = []
            for _ in range(24):
                response = await live.get("/company/>withLoginAccess", token, fields="id")
                if response.status_code >= 500:
                    error(response, response.status_code, 1000)
                # A 200's reset counts down the normal window by the wall clock: only an
                # injected 429's reset is part of the fault sequence.
                reset = response.headers.get("X-Rate-Limit-Reset")
                seen.append((response.status_code, reset if response.status_code == 429 else None))
            return seen

    first, again, other = await statuses(7), await statuses(7), await statuses(8)
    assert first == again and first != other
    kinds = {status for status, _ in first}
    assert 200 in kinds and len(kinds) >= 3 and kinds <= {200, 500, 503, 429}
    assert all(reset == "1" for status, reset in first if status == 429)

    async with open_live(seed_demo(TODAY)) as live:
        token = await live.token()
        sessions = len(live.state.sessions)
        live.state.set_faults(error_rate=1.0, error_kinds=("502",))
        created = await live.http.put(
            "/token/session/:create",
            params={
                "consumerToken": CONSUMER,
                "employeeToken": ACCOUNTANT,
                "expirationDate": TODAY,
            },
        )
        error(created, 502, 1000)
        hook = {"event": "voucher.create", "targetUrl": "https://example.com/hook"}
        error(await live.call("POST", "/event/subscription", token, json=hook), 502, 1000)
        assert len(live.state.sessions) == sessions and not live.state.subscriptions


async def test_latency_overlaps_and_timeouts(live: Live) -> None:
    token = await live.token()
    live.state.set_faults(latency_seconds=0.3)
    started = time.monotonic()
    answers = await asyncio.gather(*(live.get("/token/session/>whoAmI", token) for _ in range(10)))
    assert {r.status_code for r in answers} == {200}
    assert 0.3 <= time.monotonic() - started < 1.5  # overlapping, not 10 × 0.3 s

    live.state.set_faults(error_rate=1.0, error_kinds=("timeout",), timeout_delay_seconds=0.2)
    started = time.monotonic()
    error(await live.get("/token/session/>whoAmI", token), 504, 1000)
    assert time.monotonic() - started >= 0.2


async def test_timeout_fires_the_clients_read_timeout(simulator: Simulator) -> None:
    async with httpx.AsyncClient(base_url=simulator.base_url, timeout=0.2) as http:
        # Short, so the server's sleeping request does not hold up its shutdown.
        simulator.state.set_faults(
            error_rate=1.0, error_kinds=("timeout",), timeout_delay_seconds=0.4
        )
        with pytest.raises(httpx.ReadTimeout):
            await http.get("/token/session/>whoAmI")
        simulator.state.set_faults(error_rate=0.0)
        assert (await http.get("/token/session/>whoAmI")).status_code == 401


async def test_control_api_faults_and_outage(live: Live) -> None:
    defaults = (await live.http.get(f"{live.control}/faults")).json()
    assert defaults["rate_limit"] is None and defaults["outage_status"] is None
    assert defaults["error_kinds"] == ["500", "502", "503", "429", "timeout"]
    for bad in ({"error_rate": 2}, {"nope": 1}, {"error_kinds": ["404"]}, {"latency_seconds": "1"}):
        assert (await live.http.post(f"{live.control}/faults", json=bad)).status_code == 400
    await live.http.post(f"{live.control}/faults", json={"outage_status": 503})
    error(await live.http.get("/token/session/>whoAmI"), 503, 1000)
    await live.http.post(f"{live.control}/faults", json={"outage_status": None})
    assert (await live.http.get("/token/session/>whoAmI")).status_code == 401


async def test_expire_sessions(live: Live) -> None:
    token = await live.token()
    assert (await live.get("/token/session/>whoAmI", token)).status_code == 200
    live.state.expire_sessions()
    error(await live.get("/token/session/>whoAmI", token), 401, 3000)
    renewed = await live.token()
    assert (await live.get("/token/session/>whoAmI", renewed)).status_code == 200
    assert (await live.http.post(f"{live.control}/expire-sessions")).status_code == 204
    error(await live.get("/token/session/>whoAmI", renewed), 401, 3000)


# -- conditional GET ------------------------------------------------------------------------


async def test_conditional_get(live: Live) -> None:
    token, client = await live.token(), live.client()
    first = await live.get("/ledger/account", token, client)
    digest = first.json()["versionDigest"]
    assert first.headers["etag"] == f'"{digest}"'
    for tag in (f'"{digest}"', digest, f'W/"{digest}", "other"'):  # Tripletex sends it bare
        unchanged = await live.get("/ledger/account", token, client, {"If-None-Match": tag})
        assert unchanged.status_code == 304 and unchanged.content == b""
        assert unchanged.headers["etag"] == first.headers["etag"]
        assert "X-Rate-Limit-Remaining" in unchanged.headers
    stale = await live.get("/ledger/account", token, client, {"If-None-Match": '"stale"'})
    assert stale.status_code == 200 and stale.json()["versionDigest"] == digest

    vouchers = await live.get("/ledger/voucher", token, client, **NOVEMBER)
    sheet = await live.get("/balanceSheet", token, client, **NOVEMBER)
    posted = live.state.post_voucher(client)
    for path, before in (("/ledger/voucher", vouchers), ("/balanceSheet", sheet)):
        tag = {"If-None-Match": before.headers["etag"]}
        after = await live.get(path, token, client, tag, **NOVEMBER)
        assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
        assert after.headers["etag"] == f'"{after.json()["versionDigest"]}"'
    listed = (await live.get("/ledger/voucher", token, client, **NOVEMBER)).json()
    assert listed["fullResultSize"] == vouchers.json()["fullResultSize"] + 1

    one = await live.get(f"/ledger/voucher/{posted.id}", token, client)
    tag = {"If-None-Match": one.headers["etag"]}
    assert (await live.get(f"/ledger/voucher/{posted.id}", token, client, tag)).status_code == 304
    live.state.update_voucher(posted.id, [(1920, "10.00"), (3000, "-10.00")])
    assert (await live.get(f"/ledger/voucher/{posted.id}", token, client, tag)).status_code == 200

    account = live.state.find_voucher(posted.id)[0].accounts[0]
    live.state.update_account(account.id, name="Nytt navn")
    tag = {"If-None-Match": first.headers["etag"]}
    assert (await live.get("/ledger/account", token, client, tag)).status_code == 200


# -- a changing ledger ----------------------------------------------------------------------


async def _sheet(live: Live, token: str, client: int) -> dict[int, dict[str, Decimal]]:
    rows = await live.values(
        "/balanceSheet",
        token,
        client,
        fields="account(number),balanceIn,balanceChange,balanceOut",
        **NOVEMBER,
    )
    return {r["account"]["number"]: {k: v for k, v in r.items() if k != "account"} for r in rows}


async def test_posting_a_voucher_moves_the_balance_sheet_by_its_postings(live: Live) -> None:
    token, client = await live.token(), live.client(2)
    before = await _sheet(live, token, client)
    body = {
        "date": "2025-11-20",
        "postings": [
            {"accountNumber": 1920, "amount": "1250.00"},
            {"accountNumber": 3000, "amount": "-1000.00"},
            {"accountNumber": 2700, "amount": -250},
        ],
    }
    created = await live.http.post(f"{live.control}/companies/{client}/vouchers", json=body)
    assert created.status_code == 201, created.text
    voucher = created.json()
    assert [p["amount"] for p in voucher["postings"]] == ["1250.00", "-1000.00", "-250.00"]

    def moved(after: dict[int, dict[str, Decimal]]) -> dict[int, Decimal]:
        assert after.keys() >= before.keys()
        zero = {"balanceIn": Decimal(0), "balanceChange": Decimal(0), "balanceOut": Decimal(0)}
        delta = {}
        for number, row in after.items():
            old = before.get(number, zero)
            assert row["balanceIn"] == old["balanceIn"]
            change = row["balanceChange"] - old["balanceChange"]
            assert row["balanceOut"] - old["balanceOut"] == change
            if change:
                delta[number] = change
        return delta

    expected = {1920: Decimal("1250.00"), 3000: Decimal("-1000.00"), 2700: Decimal("-250.00")}
    assert moved(await _sheet(live, token, client)) == expected

    unbalanced = dict(body, postings=[*body["postings"][:2], {"accountNumber": 2700, "amount": 1}])
    url = f"{live.control}/companies/{client}/vouchers"
    assert error(await live.http.post(url, json=unbalanced), 422, 15000)["validationMessages"]
    assert moved(await _sheet(live, token, client)) == expected  # a refusal changes nothing

    replaced = await live.http.put(
        f"{live.control}/vouchers/{voucher['id']}",
        json={
            "postings": [
                {"accountNumber": 1920, "amount": 500},
                {"accountNumber": 3000, "amount": "-500.00"},
            ]
        },
    )
    assert replaced.status_code == 200 and replaced.json()["version"] == 1
    assert moved(await _sheet(live, token, client)) == {1920: 500, 3000: -500}

    assert (await live.http.delete(f"{live.control}/vouchers/{voucher['id']}")).status_code == 204
    assert moved(await _sheet(live, token, client)) == {}
    assert (await live.http.delete(f"{live.control}/vouchers/{voucher['id']}")).status_code == 404

    sampled = await live.http.post(url)  # no body: a realistic voucher dated today
    assert sampled.status_code == 201 and sampled.json()["date"] == TODAY.isoformat()
    amounts = [Decimal(p["amount"]) for p in sampled.json()["postings"]]
    assert len(amounts) >= 2 and sum(amounts) == 0
    again = seed_demo(TODAY)
    assert again.post_voucher(client).description == sampled.json()["description"]


async def test_voucher_endpoints(live: Live) -> None:
    token, client = await live.token(), live.client(1)
    error(await live.get("/ledger/voucher", token, client), 422, 15000)
    january = {"dateFrom": "2025-01-01", "dateTo": "2025-02-01"}
    listed = (await live.get("/ledger/voucher", token, client, **january)).json()
    vouchers = listed["values"]
    assert listed["fullResultSize"] == len(vouchers) > 5
    assert all("2025-01-01" <= v["date"] < "2025-02-01" for v in vouchers)
    assert set(vouchers[0]["postings"][0]) == {"id", "url"}  # refs unless fields opens them
    page = (
        await live.get("/ledger/voucher", token, client, **january, **{"from": 2, "count": 2})
    ).json()
    assert page["values"] == vouchers[2:4] and page["fullResultSize"] == len(vouchers)
    numbers = await live.values(
        "/ledger/voucher", token, client, **january, numberFrom=2, numberTo=4, fields="number"
    )
    assert numbers == [{"number": 2}, {"number": 3}]

    expanded = await live.values(
        "/ledger/voucher", token, client, **january, fields="id,postings(amount,account(number))"
    )
    for voucher in expanded:
        assert sum(p["amount"] for p in voucher["postings"]) == 0
        assert all(set(p) == {"amount", "account"} for p in voucher["postings"])
    whole = await live.values("/ledger/voucher", token, client, **january, fields="*,postings(*)")
    assert whole[0]["postings"][0]["voucher"] == {"id": whole[0]["id"], "url": whole[0]["url"]}

    voucher_id = vouchers[0]["id"]
    one = (await live.get(f"/ledger/voucher/{voucher_id}", token, client)).json()["value"]
    assert one == vouchers[0]
    error(await live.get(f"/ledger/voucher/{voucher_id}", token, live.client(0)), 404, 6000)
    error(await live.get("/ledger/voucher/abc", token, client), 400, 12000)
    posting_id = one["postings"][0]["id"]
    posting = (await live.get(f"/ledger/posting/{posting_id}", token, client)).json()["value"]
    assert posting["voucher"]["id"] == voucher_id
    account = (await live.get(f"/ledger/account/{posting['account']['id']}", token, client)).json()
    assert account["value"]["isPostingsExist"] is True

    live.state.update_voucher(voucher_id, [(1920, "1.00"), (7770, "-1.00")])
    changed = await live.get(f"/ledger/voucher/{voucher_id}", token, client, fields="*,changes")
    value = changed.json()["value"]
    assert value["version"] == 1 and value["postings"] != one["postings"]
    assert [c["changeType"] for c in value["changes"]] == ["CREATE", "UPDATE"]


async def test_account_changes(live: Live) -> None:
    token, client = await live.token(), live.client(3)
    url = f"{live.control}/companies/{client}/accounts"
    created = await live.http.post(url, json={"number": 1921, "name": "Sparekonto"})
    assert created.status_code == 201
    account = created.json()
    listed = await live.values("/ledger/account", token, client, number="1921", fields="*,changes")
    assert listed[0]["id"] == account["id"] and listed[0]["version"] == 0
    assert [c["changeType"] for c in listed[0]["changes"]] == ["CREATE"]
    error(await live.http.post(url, json={"number": 1921, "name": "Igjen"}), 422, 15000)
    error(await live.http.post(url, json={"number": "x", "name": "Feil"}), 422, 15000)

    changed = await live.http.put(
        f"{live.control}/accounts/{account['id']}",
        json={"name": "Høyrentekonto", "isInactive": True},
    )
    assert changed.json() == {**account, "name": "Høyrentekonto", "isInactive": True, "version": 1}
    shown = (
        await live.get(f"/ledger/account/{account['id']}", token, client, fields="*,changes")
    ).json()
    assert shown["value"]["isInactive"] is True and shown["value"]["version"] == 1
    assert [c["changeType"] for c in shown["value"]["changes"]] == ["CREATE", "UPDATE"]
    inactive = [
        {"accountNumber": 1921, "amount": "5.00"},
        {"accountNumber": 1920, "amount": "-5.00"},
    ]
    response = await live.http.post(
        f"{live.control}/companies/{client}/vouchers", json={"postings": inactive}
    )
    error(response, 422, 15000)

    bank = next(a for a in live.state.companies[client].accounts if a.number == 1920)
    error(await live.http.delete(f"{live.control}/accounts/{bank.id}"), 422, 15000)
    assert (await live.http.delete(f"{live.control}/accounts/{account['id']}")).status_code == 204
    assert await live.values("/ledger/account", token, client, number="1921") == []
    error(await live.get(f"/ledger/account/{account['id']}", token, client), 404, 6000)


# -- subscriptions and webhooks -------------------------------------------------------------


async def test_event_list(live: Live) -> None:
    token = await live.token()
    events = (await live.get("/event", token)).json()["value"]
    for name in ("voucher.create", "voucher.update", "voucher.delete"):
        assert events[name]["description"]
    assert {"account.create", "account.update", "account.delete"} <= events.keys()


async def test_subscription_crud(live: Live) -> None:
    token, a, b = await live.token(), live.client(0), live.client(1)
    new = {
        "event": "voucher.create",
        "targetUrl": "https://example.com/hook",
        "fields": "id,version",
        "authHeaderName": "Authorization",
        "authHeaderValue": "Bearer hemmelig",
        "hmacSharedSecret": "delt",
    }
    created = await live.call("POST", "/event/subscription", token, a, json=new)
    assert created.status_code == 201, created.text
    sub = created.json()["value"]
    assert sub["status"] == "ACTIVE" and sub["version"] == 0
    assert sub["url"] == f"http://sim/v2/event/subscription/{sub['id']}"
    assert sub["authHeaderName"] == "Authorization"
    assert "authHeaderValue" not in sub and "hmacSharedSecret" not in sub  # write-only

    refused = [
        ({**new, "event": "customer.create"}, "event"),
        ({**new, "targetUrl": "http://example.com/hook"}, "targetUrl"),  # HTTPS only ...
        ({**new, "targetUrl": "/hook"}, "targetUrl"),
        ({**new, "fields": "id,noSuchField"}, "fields"),
        ({**new, "authHeaderValue": None}, "authHeaderValue"),
        ({"targetUrl": new["targetUrl"]}, "event"),
    ]
    for body, field_name in refused:
        response = await live.call("POST", "/event/subscription", token, a, json=body)
        assert error(response, 422, 15000)["validationMessages"][0]["field"] == field_name
    unknown = await live.call("POST", "/event/subscription", token, a, json={**new, "nope": 1})
    error(unknown, 422, 16000)
    error(await live.call("POST", "/event/subscription", token, a, content=b"{"), 422, 22000)
    local = {"event": "account.update", "targetUrl": "http://127.0.0.1:9/hook"}  # ... but loopback
    assert (await live.call("POST", "/event/subscription", token, a, json=local)).status_code == 201

    assert [s["event"] for s in await live.values("/event/subscription", token, a)] == [
        "voucher.create",
        "account.update",
    ]
    assert await live.values("/event/subscription", token, b) == []
    path = f"/event/subscription/{sub['id']}"
    assert (await live.get(path, token, a)).json()["value"] == sub
    error(await live.get(path, token, b), 404, 6000)
    error(await live.call("PUT", path, token, b, json={"fields": "id"}), 404, 6000)
    error(await live.call("DELETE", path, token, b), 404, 6000)

    changed = await live.call("PUT", path, token, a, json={"fields": "id", "version": 0})
    assert changed.json()["value"]["fields"] == "id" and changed.json()["value"]["version"] == 1
    error(await live.call("PUT", path, token, a, json={"fields": "*", "version": 0}), 409, 8000)
    disabled = await live.call("PUT", path, token, a, json={"status": "DISABLED"})
    assert disabled.json()["value"]["status"] == "DISABLED"
    live.state.disable_subscription(sub["id"], "DISABLED_RATE_LIMIT_EXCEEDED")
    shown = await live.get(path, token, a, fields="*,changes")
    assert shown.json()["value"]["status"] == "DISABLED_RATE_LIMIT_EXCEEDED"
    assert [c["changeType"] for c in shown.json()["value"]["changes"]] == ["CREATE", "UPDATE"]

    assert (await live.call("DELETE", path, token, a)).status_code == 204
    error(await live.get(path, token, a), 404, 6000)


def _check_signature(headers: dict[str, str], body: bytes, secret: str) -> None:
    key = headers["idempotency-key"]
    assert uuid.UUID(key)
    digest = hmac.new(secret.encode(), key.encode() + b"&" + body, hashlib.sha512).digest()
    assert headers["x-request-signature"] == base64.b64encode(digest).decode()


async def test_webhooks_over_real_http_from_another_thread(
    simulator: Simulator, receiver: Receiver
) -> None:
    """The simulator serves from its own thread and loop (conftest); the test changes the
    world from this thread, and the callbacks still go out over real HTTP."""
    state = simulator.state
    state.webhooks.retry_backoff_seconds = 0.01
    async with httpx.AsyncClient(base_url=simulator.base_url) as http:
        live = Live(state, http, f"{simulator.root}/_sim")
        token, client = await live.token(), live.client(4)
        signed = {
            "event": "voucher.create",
            "targetUrl": receiver.url,
            "fields": "id,version,description,postings(amount,account(number))",
            "authHeaderName": "Authorization",
            "authHeaderValue": "Bearer hemmelig",
            "hmacSharedSecret": "delt-hemmelighet",
        }
        plain = [
            {"event": f"voucher.{verb}", "targetUrl": receiver.url} for verb in ("update", "delete")
        ]
        for body in (signed, *plain):
            created = await live.call("POST", "/event/subscription", token, client, json=body)
            assert created.status_code == 201, created.text
        subscription_id = (await live.values("/event/subscription", token, client))[0]["id"]

        voucher = state.post_voucher(client, postings=[(1920, "100.00"), (3000, "-100.00")])
        await receiver.wait_for(1)
        headers, raw = receiver.calls[0]
        payload = json.loads(raw)
        assert payload == {
            "subscriptionId": subscription_id,
            "event": "voucher.create",
            "id": voucher.id,
            "value": {
                "id": voucher.id,
                "version": 0,
                "description": "Manuelt bilag",
                "postings": [
                    {"amount": 100.0, "account": {"number": 1920}},
                    {"amount": -100.0, "account": {"number": 3000}},
                ],
            },
        }
        assert headers["authorization"] == "Bearer hemmelig"
        _check_signature(headers, raw, "delt-hemmelighet")

        # Through the control API: the change now happens on the simulator's own loop.
        postings = [{"accountNumber": n, "amount": a} for n, a in ((1920, "7"), (3000, "-7"))]
        changed = await http.put(
            f"{live.control}/vouchers/{voucher.id}", json={"postings": postings}
        )
        assert changed.status_code == 200
        await receiver.wait_for(2)
        update = json.loads(receiver.calls[1][1])
        assert update["event"] == "voucher.update" and update["id"] == voucher.id
        assert update["value"]["version"] == 1
        assert update["value"]["url"] == f"{simulator.base_url}/ledger/voucher/{voucher.id}"
        assert "authorization" not in receiver.calls[1][0]
        assert "x-request-signature" not in receiver.calls[1][0]

        state.delete_voucher(voucher.id)
        await receiver.wait_for(3)
        deleted = json.loads(receiver.calls[2][1])
        assert deleted == {**deleted, "event": "voucher.delete", "id": voucher.id, "value": None}
        keys = {h["idempotency-key"] for h, _ in receiver.calls}
        assert len(keys) == 3
    await state.webhooks.wait_idle()
    await state.webhooks.aclose()  # hops over to the simulator's loop, which owns the client
    assert [(d.event, d.status, d.attempts, d.response_status) for d in state.deliveries] == [
        ("voucher.create", "delivered", 1, 200),
        ("voucher.update", "delivered", 1, 200),
        ("voucher.delete", "delivered", 1, 200),
    ]


async def test_webhooks_in_the_apps_own_loop(live: Live, receiver: Receiver) -> None:
    """State methods called from the loop the app serves on; whole objects per the spec."""
    token, client = await live.token(), live.client(5)
    for event in ("account.create", "voucher.create"):
        body = {"event": event, "targetUrl": receiver.url}
        assert (
            await live.call("POST", "/event/subscription", token, client, json=body)
        ).status_code == 201
    account = live.state.create_account(client, 1580, "Fordring på ansatte")
    live.state.post_voucher(client)
    await receiver.wait_for(2)
    await live.state.webhooks.wait_idle()
    values = {json.loads(raw)["event"]: json.loads(raw)["value"] for _, raw in receiver.calls}
    assert values["account.create"]["id"] == account.id
    assert values["account.create"]["url"] == f"http://sim/v2/ledger/account/{account.id}"
    for event, model in (("account.create", "Account"), ("voucher.create", "Voucher")):
        problems = list(VALIDATOR.validator(model).iter_errors(values[event]))
        assert not problems, problems
    # Another company's changes and other events reach nobody.
    live.state.post_voucher(live.client(6))
    live.state.update_account(account.id, name="Lån til ansatte")
    await asyncio.sleep(0.05)
    assert len(receiver.calls) == 2 and len(live.state.deliveries) == 2


async def test_failing_target_gets_disabled(live: Live, receiver: Receiver) -> None:
    receiver.status = 500
    hooks = live.state.webhooks
    hooks.max_attempts, hooks.retry_backoff_seconds, hooks.disable_after_failures = 2, 0.01, 2
    token, client = await live.token(), live.client(7)
    body = {"event": "account.create", "targetUrl": receiver.url, "hmacSharedSecret": "s"}
    sub = (await live.call("POST", "/event/subscription", token, client, json=body)).json()["value"]
    for number in (1581, 1582):
        live.state.create_account(client, number, f"Konto {number}")
        await hooks.wait_idle()
    assert [(d.status, d.attempts, d.response_status) for d in live.state.deliveries] == [
        ("failed", 2, 500),
        ("failed", 2, 500),
    ]
    keys = [h["idempotency-key"] for h, _ in receiver.calls]
    assert (
        len(keys) == 4 and keys[0] == keys[1] and keys[2] == keys[3] != keys[0]
    )  # retries repeat it
    path = f"/event/subscription/{sub['id']}"
    assert (await live.get(path, token, client)).json()["value"][
        "status"
    ] == "DISABLED_TOO_MANY_ERRORS"
    live.state.create_account(client, 1583, "Konto 1583")
    assert len(live.state.deliveries) == 2  # disabled: nothing more goes out

    receiver.status = 200
    await live.call("PUT", path, token, client, json={"status": "ACTIVE"})
    live.state.create_account(client, 1584, "Konto 1584")
    await hooks.wait_idle()
    assert live.state.deliveries[-1].status == "delivered"


def test_subscription_dto_declares_exactly_the_spec_properties() -> None:
    state = seed_demo(TODAY)
    client = state.clients_of(ACCOUNTANT)[0].id
    sub = state.subscribe(client, "voucher.create", "https://example.com/hook")
    schema = VALIDATOR.spec["components"]["schemas"]["Subscription"]
    assert list(Renderer("http://sim/v2").subscription(sub)) == list(schema["properties"])
