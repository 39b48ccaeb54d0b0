"""Changes in Tripletex reach our balances by polling, and survive a flaky Tripletex."""

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from services.sync import periods
from services.sync.engine import SyncEngine
from tests.conftest import Simulator, create_integration, query
from tests.sync_support import simulator_month, stored_month, sync_engine

pytestmark = pytest.mark.anyio


async def local_id(settings: Settings, erp_id: int) -> int:
    return (await query(settings, f"select id from client where erp_id = {erp_id}"))[0][0]


async def assert_equal_everywhere(
    engine: SyncEngine, simulator: Simulator, client_id: int, erp_id: int
) -> None:
    for month in periods.window(simulator.state.today, 2):
        ours = await stored_month(engine, client_id, month.year, month.month)
        assert ours == simulator_month(simulator, erp_id, month.year, month.month), str(month)


async def test_new_voucher_reaches_balances_by_polling_at_the_cost_of_three_requests(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    await create_integration(client)
    company = simulator.state.clients_of("demo-regnskapskontor")[3]
    client_id = await local_id(settings, company.id)
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="activation")
        simulator.state.post_voucher(company.id)  # today, balanced, as an accountant would
        assert await engine.sync_client(client_id, trigger="poll") == "ok"
        await assert_equal_everywhere(engine, simulator, client_id, company.id)
        simulator.responses.clear()
        await engine.sync_client(client_id, trigger="poll")  # nothing changed since
    polls = await query(
        settings,
        f"select kind, requests from sync_run where client_id = {client_id} order by id",
    )
    assert [kind for kind, _ in polls] == ["full", "incremental", "incremental"]
    assert polls[1][1] == 3  # the chart of accounts and the two recent months
    statuses = sorted((path, s) for _, path, s in simulator.responses)  # fetched side by side
    # Nothing changed: the chart of accounts and both months cost no payload.
    assert statuses == [("/balanceSheet", 304), ("/balanceSheet", 304), ("/ledger/account", 304)]


async def test_twenty_percent_failing_responses_still_end_exactly_equal(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    await create_integration(client)
    companies = simulator.state.clients_of("demo-regnskapskontor")[:3]
    simulator.state.set_faults(
        error_rate=0.2,
        error_kinds=("500", "502", "503", "429", "timeout"),
        timeout_delay_seconds=1.0,
        fault_seed=7,
    )
    async with sync_engine(
        settings, simulator, http_timeout=0.5, max_retries=4, backoff=0.01
    ) as engine:
        for company in companies:
            client_id = await local_id(settings, company.id)
            for _ in range(5):  # the scheduler would retry a failed sync on a later tick
                if await engine.sync_client(client_id, trigger="schedule") == "ok":
                    break
            simulator.state.set_faults(error_rate=0.0)
            await assert_equal_everywhere(engine, simulator, client_id, company.id)
            simulator.state.set_faults(error_rate=0.2)
    retries = (await query(settings, "select sum(retries) from sync_run"))[0][0]
    assert retries > 0  # the history shows what it took
