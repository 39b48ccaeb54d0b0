"""A sync process killed mid-way (SIGKILL) leaves consistent data; once its lease expires
the work is redone elsewhere and the end state is exact."""

import asyncio
import os
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from models import MonthMovement
from services.db import create_engine, create_session_factory
from services.settings import Settings
from services.sync import periods
from services.sync.scheduler import SchedulerSettings, SyncRunner
from tests.conftest import Simulator, create_integration, htmx, query
from tests.sync_support import simulator_month, stored_month, sync_engine

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]


async def stored_movements(settings: Settings, client_id: int) -> dict[tuple[int, int], dict]:
    """Through the models, so amounts come back as the app reads them."""
    engine = create_engine(settings.database_url)
    async with create_session_factory(engine)() as db:
        rows = (
            await db.exec(select(MonthMovement).where(col(MonthMovement.client_id) == client_id))
        ).all()
    await engine.dispose()
    months: dict[tuple[int, int], dict[int, Decimal]] = {}
    for row in rows:
        months.setdefault((row.year, row.month), {})[row.account_number] = row.amount
    return months


async def test_killed_sync_is_redone_after_its_lease_expires(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    company = simulator.state.clients_of("demo-regnskapskontor")[2]
    client_id = dict(await query(settings, "select erp_id, id from client"))[company.id]
    await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "true"},
        headers=htmx(client),
    )
    simulator.state.set_faults(latency_seconds=0.1)  # slow enough to be caught mid-way
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.sync_worker", settings.database_url,
        simulator.base_url, str(client_id), "2",
        cwd=ROOT,
        env={**os.environ, "ENCRYPTION_KEY": settings.encryption_keys[0]},
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while (await query(settings, f"select progress_done from client where id = {client_id}"))[0][
        0
    ] < 6:
        assert worker.returncode is None and time.monotonic() < deadline, "worker stalled"
        await asyncio.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    await worker.wait()

    # What the dead process committed is whole months, each exactly Tripletex's.
    stored = await stored_movements(settings, client_id)
    assert stored, "some months were committed before the kill"
    for (year, month), movement in stored.items():
        theirs = {
            n: change
            for n, (_, change) in simulator_month(simulator, company.id, year, month).items()
            if change
        }
        assert movement == theirs, (year, month)
    owner = await query(settings, f"select lease_owner from client where id = {client_id}")
    assert owner[0][0].startswith("worker:")  # the lease outlives its holder...

    simulator.state.set_faults(latency_seconds=0.0)
    async with sync_engine(settings, simulator) as engine:
        runner = SyncRunner(engine.session_factory, engine, SchedulerSettings())
        assert await runner.tick() == 0  # ...and nobody takes it while it lasts
        await asyncio.sleep(2.1)
        assert await runner.tick() == 1  # expired: the work is redone
        await runner.drain()
        for month in periods.window(simulator.state.today, 2):
            ours = await stored_month(engine, client_id, month.year, month.month)
            assert ours == simulator_month(simulator, company.id, month.year, month.month)
    history = await query(
        settings, f"select result, error from sync_run where client_id = {client_id} order by id"
    )
    assert history[0][0] == "failed" and history[0][1].startswith("interrupted")
    assert history[-1] == ("ok", None)
