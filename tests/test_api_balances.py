"""The balances the API hands out equal Tripletex's balanceSheet, to the øre, for every
seeded client and every month of the window (after a full sync of all of them)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from litestar.testing import AsyncTestClient

from services.ratelimit import API_LIMITER
from services.settings import Settings
from services.sync import periods
from tests import api_support
from tests.api_support import bearer, create_token
from tests.conftest import Simulator, create_integration, query
from tests.sync_support import sync_engine

pytestmark = pytest.mark.anyio

api = api_support.api
no_settle_delay = api_support.no_settle_delay


async def test_api_balances_equal_the_balance_sheet_for_every_client_and_month(
    client: AsyncTestClient,
    api: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(API_LIMITER, "burst", 10**6)
    await create_integration(client)
    local = {erp: own for own, erp in await query(settings, "select id, erp_id from client")}
    no_access = simulator.state.no_api_access_client_id
    async with sync_engine(settings, simulator) as engine:
        for client_id in local.values():
            await engine.sync_client(client_id, trigger="manual")
    token = await create_token(client)
    months = periods.window(simulator.state.today, 2)
    compared = 0
    for erp_id, client_id in local.items():
        if erp_id == no_access:
            continue
        for month in months:
            response = await api.get(
                f"/api/v1/clients/{client_id}/balances",
                params={"month": str(month)},
                headers=bearer(token),
            )
            assert response.status_code == 200, response.text
            body = response.json()
            ours = {
                line["account_number"]: (
                    Decimal(line["opening"]),
                    Decimal(line["movement"]),
                    Decimal(line["closing"]),
                )
                for line in body["lines"]
            }
            sheet = simulator.state.balance_sheet(erp_id, month.start, month.end)
            theirs = {
                row.account.number: (row.balance_in, row.balance_change, row.balance_out)
                for row in sheet
                if row.balance_in or row.balance_change or row.balance_out
            }
            assert ours == theirs, (erp_id, str(month))
            closing = sum((row.balance_out for row in sheet), Decimal(0))
            assert Decimal(body["totals"]["closing"]) == closing, (erp_id, str(month))
            compared += 1
    assert compared == (len(local) - 1) * len(months)
