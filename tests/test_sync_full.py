"""A full sync makes our balances equal Tripletex's, to the øre, for every client."""

import asyncio
import re
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from services.connectors.base import Connector
from services.settings import Settings
from services.sync import periods
from services.sync.slots import RequestSlots
from tests.conftest import Simulator, create_integration, htmx, query
from tests.sync_support import simulator_month, stored_month, sync_engine

pytestmark = pytest.mark.anyio


async def clients_by_erp_id(settings: Settings) -> dict[int, int]:
    return {erp: local for local, erp in await query(settings, "select id, erp_id from client")}


async def test_full_sync_equals_tripletex_for_every_client_and_month(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    await create_integration(client)
    local = await clients_by_erp_id(settings)
    no_access = simulator.state.no_api_access_client_id
    months = periods.window(simulator.state.today, 2)
    async with sync_engine(settings, simulator) as engine:
        for erp_id, client_id in local.items():
            result = await engine.sync_client(client_id, trigger="manual")
            assert result == ("failed" if erp_id == no_access else "ok"), erp_id
        compared = 0
        for erp_id, client_id in local.items():
            if erp_id == no_access:
                continue
            for month in months:
                ours = await stored_month(engine, client_id, month.year, month.month)
                theirs = simulator_month(simulator, erp_id, month.year, month.month)
                assert ours == theirs, (erp_id, str(month))
                compared += 1
    assert compared == (len(local) - 1) * len(months)


async def test_chart_of_accounts_is_stored_with_what_reconciliation_needs(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    await create_integration(client)
    company = simulator.state.clients_of("demo-regnskapskontor")[0]
    client_id = (await clients_by_erp_id(settings))[company.id]
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="manual")
    rows = await query(
        settings,
        "select number, name, is_inactive, is_bank_account from account "
        f"where client_id = {client_id}",
    )
    assert len(rows) == len(company.accounts)
    bank = [r for r in rows if r[3]]
    assert bank and all(str(r[0]).startswith("19") for r in bank)
    assert any(r[2] for r in rows)  # inactive accounts are kept, marked inactive


async def test_running_the_same_sync_twice_changes_nothing(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    await create_integration(client)
    company = simulator.state.clients_of("demo-regnskapskontor")[1]
    client_id = (await clients_by_erp_id(settings))[company.id]
    snapshot = (
        "select 'm', year, month, account_number, amount from month_movement "
        "union all select 'o', year, 0, account_number, amount from year_opening "
        "order by 1, 2, 3, 4"
    )
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="manual", full=True)
        first = await query(settings, snapshot)
        await engine.sync_client(client_id, trigger="manual", full=True)
    assert first and await query(settings, snapshot) == first


async def test_client_without_api_access_shows_the_fix_in_its_row(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    company = simulator.state.company(simulator.state.no_api_access_client_id)
    client_id = (await clients_by_erp_id(settings))[company.id]
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "failed"
    row = await client.get(
        f"/integrasjoner/{integration_id}",
        params={"q": company.organization_number},
        headers=htmx(client),
    )
    assert "Regnskapsførers tilgang" in row.text
    assert "sett hake for API-tilgang" in row.text


async def test_full_sync_switch_clears_itself_when_done(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    page = (await client.get(f"/integrasjoner/{integration_id}")).text
    client_id = int(re.findall(r'<tr id="client-(\d+)"', page)[0])
    await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/full_sync",
        data={"on": "true"},
        headers=htmx(client),
    )
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="manual")
    assert (await query(settings, f"select full_sync from client where id = {client_id}")) == [
        (False,)
    ]
    history = await query(
        settings, f"select kind, result, requests from sync_run where client_id = {client_id}"
    )
    assert history[0][:2] == ("full", "ok")
    months = len(periods.window(simulator.state.today, 2))
    assert history[0][2] <= months + 3  # requests per full sync: months + accounts + session


class InFlight:
    """The real connector, counting its balance fetches in flight at once."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self.now = self.most = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connector, name)

    async def fetch_balances(self, *args: Any, **kwargs: Any) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            return await self._connector.fetch_balances(*args, **kwargs)
        finally:
            self.now -= 1


async def test_months_are_fetched_side_by_side_within_the_key_limit(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    await create_integration(client)
    erp_ids = [c.id for c in simulator.state.clients_of("demo-regnskapskontor")[:2]]
    local = await clients_by_erp_id(settings)
    simulator.state.set_faults(latency_seconds=0.02)  # long enough for fetches to overlap
    seen: list[InFlight] = []

    def observe(connector: Connector) -> Connector:
        seen.append(InFlight(connector))
        return seen[-1]  # type: ignore[return-value]

    async with sync_engine(settings, simulator, wrap=observe) as engine:
        engine.requests = RequestSlots(total=8, per_key=3)  # both clients share one key
        results = await asyncio.gather(
            *(engine.sync_client(local[erp_id], trigger="manual") for erp_id in erp_ids)
        )
        assert results == ["ok", "ok"]
        month = periods.window(simulator.state.today, 2)[0]
        for erp_id in erp_ids:
            ours = await stored_month(engine, local[erp_id], month.year, month.month)
            assert ours == simulator_month(simulator, erp_id, month.year, month.month)
    # Several months at once (not one after another), never more than the key allows.
    assert seen[0].most == 3
