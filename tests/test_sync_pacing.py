"""A key's clients share one Tripletex rate limit: we slow down before hitting it."""

import asyncio

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from services.sync import periods
from tests.conftest import Simulator, create_integration, query
from tests.sync_support import simulator_month, stored_month, sync_engine

pytestmark = pytest.mark.anyio


async def test_concurrent_syncs_of_one_key_pace_themselves_below_the_rate_limit(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    await create_integration(client)
    companies = simulator.state.clients_of("demo-regnskapskontor")[:3]
    rows = await query(settings, "select erp_id, id from client")
    ids = {erp_id: client_id for erp_id, client_id in rows}
    # Three full syncs need about 80 requests; the key may make 40 every 2 seconds.
    simulator.state.set_faults(rate_limit=40, rate_period_seconds=2.0)
    async with sync_engine(settings, simulator, max_retries=0) as engine:
        results = await asyncio.gather(
            *(engine.sync_client(ids[c.id], trigger="manual") for c in companies)
        )
        assert results == ["ok", "ok", "ok"]  # with no retries allowed, one 429 would fail
        for company in companies:
            for month in periods.window(simulator.state.today, 2):
                ours = await stored_month(engine, ids[company.id], month.year, month.month)
                assert ours == simulator_month(simulator, company.id, month.year, month.month)
    statuses = [status for _, _, status in simulator.responses]
    assert 429 not in statuses
    assert len(statuses) > 40 * 1.5  # more than one period's budget: pacing was needed
