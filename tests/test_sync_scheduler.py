"""Due clients are claimed through leases: racing runners never sync one client twice."""

import asyncio
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, update

from models import Client
from models.base import utcnow
from services.db import create_engine, create_session_factory
from services.settings import Settings
from services.sync import leases
from services.sync.scheduler import SchedulerSettings, SyncRunner
from tests.conftest import Simulator, create_integration, csrf, query
from tests.sync_support import sync_engine

pytestmark = pytest.mark.anyio


async def activate_all(client: AsyncTestClient, integration_id: int) -> None:
    await client.post(
        f"/integrasjoner/{integration_id}/aktiver-alle", data={"_csrf_token": csrf(client)}
    )


async def test_two_runners_sync_each_due_client_exactly_once(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    await activate_all(client, integration_id)
    async with sync_engine(settings, simulator) as engine:
        config = SchedulerSettings(concurrency=50, per_integration=4)
        first = SyncRunner(engine.session_factory, engine, config)
        second = SyncRunner(engine.session_factory, engine, config)
        started = await asyncio.gather(first.tick(), second.tick())
        await asyncio.gather(first.drain(), second.drain())
    active = (await query(settings, "select count(*) from client where active"))[0][0]
    assert sum(started) == active
    runs = await query(settings, "select client_id, count(*) from sync_run group by client_id")
    assert len(runs) == active and all(count == 1 for _, count in runs)
    leftover = await query(settings, "select count(*) from client where lease_owner is not null")
    assert leftover == [(0,)]
    # Synced clients are not due again until their next poll.
    assert await first.tick() == 0


async def test_a_live_lease_is_not_taken_and_an_expired_one_is(
    client: AsyncTestClient, settings: Settings
) -> None:
    await activate_all(client, await create_integration(client))
    client_id = (await query(settings, "select min(id) from client"))[0][0]
    engine = create_engine(settings.database_url)
    async with create_session_factory(engine)() as db:
        assert await leases.claim(db, client_id, "a", timedelta(minutes=5))
        assert not await leases.claim(db, client_id, "b", timedelta(minutes=5))
        # A crashed holder stops renewing; once its lease has run out, work moves on.
        await db.exec(leases.update_lease_expiry(client_id, utcnow() - timedelta(seconds=1)))
        await db.commit()
        assert await leases.claim(db, client_id, "b", timedelta(minutes=5))
        # Not due any more (synced, next poll later): nobody claims it, lease or not.
        await db.exec(leases.update_lease_expiry(client_id, utcnow() - timedelta(seconds=1)))
        await db.exec(
            update(Client)
            .where(col(Client.id) == client_id)
            .values(sync_due_at=utcnow() + timedelta(minutes=10))
        )
        await db.commit()
        assert not await leases.claim(db, client_id, "c", timedelta(minutes=5))
    await engine.dispose()


async def test_a_runner_takes_only_what_it_has_room_for_most_overdue_first(
    client: AsyncTestClient, settings: Settings
) -> None:
    await activate_all(client, await create_integration(client))
    ids = [row[0] for row in await query(settings, "select id from client order by id")]
    assert len(ids) >= 5
    now = utcnow()
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    async with factory() as db:
        for age, client_id in enumerate(ids):  # the later the id, the longer overdue
            await db.exec(
                update(Client)
                .where(col(Client.id) == client_id)
                .values(sync_due_at=now - timedelta(minutes=age + 1))
            )
        await db.commit()
        first = await leases.claim_due(
            db, "a", timedelta(minutes=5), limit=2, systems=["tripletex"]
        )
        second = await leases.claim_due(
            db, "b", timedelta(minutes=5), limit=len(ids), systems=["tripletex"]
        )
    await engine.dispose()
    assert sorted(client_id for client_id, _ in first) == ids[-2:]  # the two most overdue
    assert sorted(client_id for client_id, _ in second) == ids[:-2]  # the rest, none twice
    owners = await query(settings, "select lease_owner, count(*) from client group by 1")
    assert sorted(owners) == [("a", 2), ("b", len(ids) - 2)]
