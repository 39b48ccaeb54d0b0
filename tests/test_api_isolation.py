"""Office B's token never sees office A's clients: every endpoint answers 404 for them,
exactly as for ids that do not exist, and lists and the change feed leave them out."""

from __future__ import annotations

import logging

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests import api_support
from tests.api_support import bearer, create_token
from tests.conftest import Simulator, create_integration, htmx, query
from tests.sync_support import sync_engine

pytestmark = pytest.mark.anyio

api = api_support.api
office_b = api_support.office_b
no_settle_delay = api_support.no_settle_delay

CLIENT_ENDPOINTS = [
    "/api/v1/clients/{id}",
    "/api/v1/clients/{id}/accounts",
    "/api/v1/clients/{id}/balances?month={month}",
    "/api/v1/clients/{id}/balances?from={month}&to={month}",
    "/api/v1/clients/{id}/balances?date={month_end}",
]


async def test_every_endpoint_refuses_another_offices_client_as_not_found(
    client: AsyncTestClient,
    office_b: AsyncTestClient,
    api: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
) -> None:
    integration_id = await create_integration(client)
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    ((client_id,),) = (await query(settings, "select min(id) from client"))[:1]
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="manual")
    await create_integration(office_b, key="demo-eget-selskap", description="B")
    token_a, token_b = await create_token(client), await create_token(office_b)
    year = simulator.state.today.year
    values = {"month": f"{year}-01", "month_end": f"{year}-01-31"}
    missing = 10**6
    for template in CLIENT_ENDPOINTS:
        own = await api.get(template.format(id=client_id, **values), headers=bearer(token_a))
        assert own.status_code == 200, template
        theirs = await api.get(template.format(id=client_id, **values), headers=bearer(token_b))
        unknown = await api.get(template.format(id=missing, **values), headers=bearer(token_b))
        assert theirs.status_code == unknown.status_code == 404, template
        assert theirs.json() == unknown.json(), "the answer must not tell existing from not"
    listed_b = (await api.get("/api/v1/clients", headers=bearer(token_b))).json()["data"]
    own_ids_b = {
        r[0]
        for r in await query(
            settings,
            "select c.id from client c join integration i on i.id = c.integration_id "
            "where i.description = 'B'",
        )
    }
    assert {c["id"] for c in listed_b} == own_ids_b
    changes_b = (await api.get("/api/v1/changes", headers=bearer(token_b))).json()["data"]
    assert all(c["client_id"] in own_ids_b for c in changes_b)
    changes_a = (await api.get("/api/v1/changes", headers=bearer(token_a))).json()["data"]
    assert changes_a and not any(c["client_id"] in own_ids_b for c in changes_a)


async def test_client_mistakes_are_not_logged_as_errors(
    client: AsyncTestClient, api: AsyncTestClient, caplog: pytest.LogCaptureFixture
) -> None:
    token = await create_token(client)
    with caplog.at_level(logging.INFO):
        await api.get("/api/v1/clients")
        await api.get("/api/v1/clients/5/balances?month=x", headers=bearer(token))
        await api.get("/api/v1/clients/5", headers=bearer(token))
        await api.get("/api/v1/clients?limit=many", headers=bearer(token))
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert token not in caplog.text
