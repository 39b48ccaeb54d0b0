"""The read endpoints: clients, chart of accounts, balances; cursors, ETags, and the
400/401/404 answers, described by the app's own OpenAPI schema."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests import api_support
from tests.api_support import bearer, create_token
from tests.conftest import Simulator, create_integration, htmx, query
from tests.sync_support import sync_engine

pytestmark = pytest.mark.anyio

api = api_support.api
no_settle_delay = api_support.no_settle_delay
AMOUNT = re.compile(r"^-?[0-9]+\.[0-9]{2}$")


async def synced_client(
    client: AsyncTestClient, settings: Settings, simulator: Simulator, index: int = 0
) -> tuple[int, int]:
    """An integration with one synced client; returns (local client id, its ERP id)."""
    if not await query(settings, "select id from integration"):
        await create_integration(client)
    company = simulator.state.clients_of("demo-regnskapskontor")[index]
    ((client_id,),) = await query(settings, f"select id from client where erp_id = {company.id}")
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "ok"
    return client_id, company.id


async def test_clients_are_listed_with_health_and_last_sync(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, _ = await synced_client(client, settings, simulator)
    token = await create_token(client)
    body = (await api.get("/api/v1/clients", headers=bearer(token))).json()
    total = len(await query(settings, "select id from client"))
    assert len(body["data"]) == total and body["next_cursor"] is None
    synced = next(c for c in body["data"] if c["id"] == client_id)
    assert synced["system"] == "tripletex"
    assert synced["last_synced_at"] is not None
    assert synced["health"]["status"] == "inactive"  # synced by hand, never switched on
    assert {"id", "name", "org_number", "integration_id", "active"} <= synced.keys()


async def test_clients_with_send_data_off_are_invisible(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, _ = await synced_client(client, settings, simulator)
    ((integration_id,),) = await query(settings, "select id from integration")
    await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/send_data",
        data={"on": "false"},
        headers=htmx(client),
    )
    token = await create_token(client)
    listed = (await api.get("/api/v1/clients", headers=bearer(token))).json()["data"]
    assert client_id not in [c["id"] for c in listed]
    for path in ("", "/accounts", "/balances?month=2026-01"):
        response = await api.get(f"/api/v1/clients/{client_id}{path}", headers=bearer(token))
        assert response.status_code == 404, path


async def test_pages_follow_cursors_without_gaps_or_repeats(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings
) -> None:
    await create_integration(client)
    token = await create_token(client)
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
        body = (await api.get("/api/v1/clients", params=params, headers=bearer(token))).json()
        seen += [c["id"] for c in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    all_ids = sorted(r[0] for r in await query(settings, "select id from client"))
    assert seen == all_ids
    assert pages == -(-len(all_ids) // 7)


async def test_etag_and_if_none_match_give_304_until_data_changes(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings
) -> None:
    await create_integration(client)
    token = await create_token(client)
    first = await api.get("/api/v1/clients", headers=bearer(token))
    etag = first.headers["etag"]
    again = await api.get("/api/v1/clients", headers={**bearer(token), "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    ((integration_id,),) = await query(settings, "select id from integration")
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    changed = await api.get("/api/v1/clients", headers={**bearer(token), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_chart_of_accounts_pages_in_number_order(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, erp_id = await synced_client(client, settings, simulator)
    token = await create_token(client)
    numbers: list[int] = []
    cursor = None
    while True:
        params = {"limit": "25", **({"cursor": cursor} if cursor else {})}
        response = await api.get(
            f"/api/v1/clients/{client_id}/accounts", params=params, headers=bearer(token)
        )
        body = response.json()
        numbers += [a["number"] for a in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = sorted(a.number for a in simulator.state.company(erp_id).accounts)
    assert numbers == expected


async def test_balances_of_a_month_carry_string_amounts_and_totals(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, _ = await synced_client(client, settings, simulator)
    token = await create_token(client)
    today = simulator.state.today
    month = f"{today.year}-{today.month:02d}"
    response = await api.get(
        f"/api/v1/clients/{client_id}/balances", params={"month": month}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["from_month"] == body["to_month"] == month and body["as_of"] is None
    assert body["lines"], "a synced client has balances"
    for line in body["lines"]:
        for key in ("opening", "movement", "closing"):
            assert isinstance(line[key], str) and AMOUNT.match(line[key]), line
        assert Decimal(line["opening"]) + Decimal(line["movement"]) == Decimal(line["closing"])
    for key in ("opening", "movement", "closing"):
        assert Decimal(body["totals"][key]) == sum(Decimal(line[key]) for line in body["lines"])
    assert '"opening":"' in response.text  # strings in the JSON itself, never numbers


async def test_range_and_trial_balance_at_a_date(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, _ = await synced_client(client, settings, simulator)
    token = await create_token(client)
    year = simulator.state.today.year - 1
    base = f"/api/v1/clients/{client_id}/balances"
    ranged = (
        await api.get(
            base, params={"from": f"{year}-01", "to": f"{year}-03"}, headers=bearer(token)
        )
    ).json()
    at_date = (await api.get(base, params={"date": f"{year}-03-31"}, headers=bearer(token))).json()
    assert at_date["as_of"] == f"{year}-03-31"
    assert (at_date["from_month"], at_date["to_month"]) == (f"{year}-01", f"{year}-03")
    assert at_date["lines"] == ranged["lines"] and at_date["totals"] == ranged["totals"]
    march = (await api.get(base, params={"month": f"{year}-03"}, headers=bearer(token))).json()
    closing = {line["account_number"]: line["closing"] for line in march["lines"]}
    assert closing == {line["account_number"]: line["closing"] for line in ranged["lines"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({}, "month", id="nothing"),
        pytest.param({"month": "2026-13"}, "month", id="month-13"),
        pytest.param({"month": "mars"}, "month", id="month-word"),
        pytest.param({"month": "1990-01"}, "month", id="month-not-kept"),
        pytest.param({"from": "2026-01"}, "to", id="from-without-to"),
        pytest.param({"to": "2026-01"}, "from", id="to-without-from"),
        pytest.param({"from": "2026-03", "to": "2026-01"}, "to", id="backwards"),
        pytest.param({"from": "2025-11", "to": "2026-02"}, "to", id="across-years"),
        pytest.param({"date": "2026-02-30"}, "date", id="no-such-day"),
        pytest.param({"date": "2026-02-14"}, "date", id="not-month-end"),
        pytest.param({"date": "31.01.2026"}, "date", id="norwegian-format"),
        pytest.param({"month": "2026-01", "date": "2026-01-31"}, "month", id="two-at-once"),
    ],
)
async def test_malformed_periods_are_400_naming_the_field(
    client: AsyncTestClient,
    api: AsyncTestClient,
    settings: Settings,
    params: dict[str, str],
    field: str,
) -> None:
    await create_integration(client)
    ((client_id,),) = (await query(settings, "select min(id) from client"))[:1]
    token = await create_token(client)
    response = await api.get(
        f"/api/v1/clients/{client_id}/balances", params=params, headers=bearer(token)
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"] == field and body["message"].startswith(field)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param("/api/v1/clients?cursor=!!!", "cursor", id="cursor-garbage"),
        pytest.param("/api/v1/clients?cursor=MS4y", "cursor", id="cursor-wrong-shape"),
        pytest.param("/api/v1/clients?limit=0", "limit", id="limit-zero"),
        pytest.param("/api/v1/clients?limit=many", "limit", id="limit-word"),
        pytest.param("/api/v1/changes?cursor=abc", "cursor", id="changes-cursor"),
        # Past what the column holds: PostgreSQL refused the query itself (a 500).
        pytest.param("/api/v1/clients?cursor=MjE0NzQ4MzY0OA", "cursor", id="cursor-past-int4"),
        pytest.param(
            "/api/v1/changes?cursor=OTIyMzM3MjAzNjg1NDc3NTgwOA", "cursor", id="changes-past-bigint"
        ),
    ],
)
async def test_malformed_list_parameters_are_400(
    client: AsyncTestClient, api: AsyncTestClient, path: str, field: str
) -> None:
    token = await create_token(client)
    response = await api.get(path, headers=bearer(token))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


async def test_an_accounts_cursor_past_its_columns_is_400(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings
) -> None:
    await create_integration(client)
    ((client_id,),) = (await query(settings, "select min(id) from client"))[:1]
    token = await create_token(client)
    cursor = "MS4xMDk5NTExNjI3Nzc2"  # account number 1, account id 2**40
    response = await api.get(
        f"/api/v1/clients/{client_id}/accounts?cursor={cursor}", headers=bearer(token)
    )
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "cursor"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/clients/999999",
        "/api/v1/clients/99999999999999999999",
        "/api/v1/clients/0/accounts",
        "/api/v1/clients/abc",
        "/api/v1/nothing-here",
    ],
)
async def test_unknown_things_are_json_404(
    client: AsyncTestClient, api: AsyncTestClient, path: str
) -> None:
    token = await create_token(client)
    response = await api.get(path, headers=bearer(token))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_openapi_schema_describes_the_api_and_nothing_else(api: AsyncTestClient) -> None:
    response = await api.get("/api/v1/schema/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert set(schema["paths"]) == {
        "/api/v1/clients",
        "/api/v1/clients/{client_id}",
        "/api/v1/clients/{client_id}/accounts",
        "/api/v1/clients/{client_id}/balances",
        "/api/v1/changes",
        "/api/v1/integrations/{integration_id}/saft-imports",
        "/api/v1/saft-imports/{import_id}",
        "/api/v1/audit",
    }
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, item in schema["paths"].items():
        [(method, operation)] = item.items()
        assert operation["security"] == [{"bearerAuth": []}], path
        success = "201" if method == "post" else "200"
        assert {success, "400", "401", "429"} <= set(operation["responses"]), path
        if "_id}" in path:
            assert "404" in operation["responses"], path
    upload = schema["paths"]["/api/v1/integrations/{integration_id}/saft-imports"]["post"]
    assert set(upload["requestBody"]["content"]) == {"application/xml"}
    assert {"202", "413", "415", "422"} <= set(upload["responses"])
    balances = schema["paths"]["/api/v1/clients/{client_id}/balances"]["get"]
    assert {p["name"] for p in balances["parameters"]} >= {"month", "from", "to", "date"}


async def test_browsable_docs_render_without_scripts(api: AsyncTestClient) -> None:
    response = await api.get("/api/v1/docs")
    assert response.status_code == 200
    assert "/api/v1/clients/{client_id}/balances" in response.text
    assert "Authorization: Bearer" in response.text
    assert "cdn" not in response.text.lower()
    # Norwegian summaries; the schema's inline code rendered as code, never as backticks.
    assert "Saldobalansen" in response.text and "List clients" not in response.text
    assert "`" not in re.sub(r"<code>[^<]*</code>", "", response.text)
    assert "<code>next_cursor</code>" in response.text
