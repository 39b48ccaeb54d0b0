"""Keeping a client's Tripletex subscriptions right: made once, checked daily, renewed when
Tripletex disables them (polling meanwhile), removed when nobody should be called."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from models.base import utcnow
from services.change_events.subscriptions import SubscriptionManager
from services.connectors.registry import Connectors
from services.connectors.tripletex import TripletexClient, TripletexConnector
from services.crypto import KeyVault
from services.db import SessionFactory, create_engine, create_session_factory
from services.outbound import outbound
from services.settings import Settings
from services.sync import periods
from services.sync.engine import SyncEngine, SyncSettings
from services.sync.nightly import run_nightly
from services.sync.scheduler import SchedulerSettings, SyncRunner
from simulators.tripletex.model import Company
from tests.conftest import Simulator, create_integration, query

pytestmark = pytest.mark.anyio
PUBLIC_URL = "https://erp.kontor-a.no"  # never called here: no voucher is posted
EVENTS = 6


@dataclass
class Parts:
    manager: SubscriptionManager
    runner: SyncRunner
    engine: SyncEngine
    factory: SessionFactory
    vault: KeyVault
    connector: TripletexConnector


@asynccontextmanager
async def parts(
    settings: Settings, simulator: Simulator, public_url: str | None = PUBLIC_URL
) -> AsyncIterator[Parts]:
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    vault = KeyVault(settings.encryption_keys)
    async with outbound(5) as out:
        connector = TripletexConnector(
            TripletexClient(
                out.erp,
                base_url=settings.system("tripletex").base_url,
                consumer_token=settings.system("tripletex").consumer_token,
                backoff=0.01,
            )
        )
        connectors = Connectors([connector])
        manager = SubscriptionManager(factory, vault, connectors, public_url)
        sync = SyncEngine(
            factory, vault, connectors, SyncSettings(), today=lambda: simulator.state.today
        )
        runner = SyncRunner(factory, sync, SchedulerSettings(), manager)
        yield Parts(manager, runner, sync, factory, vault, connector)
    await engine.dispose()


async def activated(client: AsyncTestClient, settings: Settings, company: Company) -> int:
    await create_integration(client)
    await execute(settings, f"update client set active = true where erp_id = {company.id}")
    return (await query(settings, f"select id from client where erp_id = {company.id}"))[0][0]


async def execute(settings: Settings, sql: str, **params: object) -> None:
    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(text(sql), params)
    await engine.dispose()


def subscriptions_at_tripletex(simulator: Simulator, company: Company) -> dict[str, str]:
    return {
        s.event: s.status
        for s in simulator.state.subscriptions.values()
        if s.company_id == company.id
    }


async def live_mode(settings: Settings, client_id: int) -> str:
    return (await query(settings, f"select live_mode from client where id = {client_id}"))[0][0]


async def age_checks(settings: Settings, client_id: int) -> None:
    """As if the last status check was yesterday: the next reconcile asks Tripletex again."""
    await execute(
        settings,
        f"update webhook_subscription set checked_at = :old where client_id = {client_id}",
        old=utcnow() - timedelta(hours=21),
    )


async def test_subscribing_is_done_once_with_a_secret_per_subscription(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    company = simulator.state.clients_of("demo-regnskapskontor")[2]
    client_id = await activated(client, settings, company)
    async with parts(settings, simulator) as p:
        manager = p.manager
        assert await manager.reconcile(client_id) == "webhooks"
        simulator.responses.clear()
        assert await manager.reconcile(client_id) == "webhooks"
    assert simulator.responses == []  # nothing to do, and nothing asked of Tripletex
    assert set(subscriptions_at_tripletex(simulator, company).values()) == {"ACTIVE"}
    assert len(subscriptions_at_tripletex(simulator, company)) == EVENTS
    subs = [s for s in simulator.state.subscriptions.values() if s.company_id == company.id]
    assert all(s.target_url.startswith(PUBLIC_URL + "/webhooks/tripletex/") for s in subs)
    assert len({s.target_url for s in subs}) == len({s.hmac_shared_secret for s in subs}) == EVENTS
    stored = await query(settings, "select secret_ciphertext from webhook_subscription")
    assert not any(s.hmac_shared_secret in row[0] for s in subs for row in stored)  # encrypted
    assert await live_mode(settings, client_id) == "webhooks"


async def test_a_disabled_subscription_is_noticed_renewed_and_polled_meanwhile(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    company = simulator.state.clients_of("demo-regnskapskontor")[2]
    client_id = await activated(client, settings, company)
    async with parts(settings, simulator) as p:
        manager, runner = p.manager, p.runner
        await manager.reconcile(client_id)
        await p.engine.sync_client(client_id)
        voucher_sub = next(
            s
            for s in simulator.state.subscriptions.values()
            if s.company_id == company.id and s.event == "voucher.update"
        )
        simulator.state.disable_subscription(voucher_sub.id, "DISABLED_RATE_LIMIT_EXCEEDED")
        await age_checks(settings, client_id)
        simulator.state.outage_status = 503  # the renewal fails: the client is polled
        assert await manager.reconcile(client_id) == "fallback"
        simulator.state.outage_status = None

        # Tonight: the nightly job queues a reconcile; the sync that follows renews it.
        await run_nightly(
            p.factory,
            p.vault,
            Connectors([p.connector]),
            today=simulator.state.today,
            years=2,
        )
        assert await runner.tick() >= 1
        await runner.drain()
    assert subscriptions_at_tripletex(simulator, company)["voucher.update"] == "ACTIVE"
    assert await live_mode(settings, client_id) == "webhooks"
    runs = await query(
        settings, f"select kind, trigger, result from sync_run where client_id = {client_id}"
    )
    assert runs == [("full", "activation", "ok"), ("incremental", "nightly", "ok")]


async def test_a_subscription_tripletex_lost_is_made_again(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    company = simulator.state.clients_of("demo-regnskapskontor")[2]
    client_id = await activated(client, settings, company)
    async with parts(settings, simulator) as p:
        manager = p.manager
        await manager.reconcile(client_id)
        lost = next(s for s in simulator.state.subscriptions.values() if s.company_id == company.id)
        simulator.state.delete_subscription(lost.id)
        await age_checks(settings, client_id)
        assert await manager.reconcile(client_id) == "webhooks"
    assert len(subscriptions_at_tripletex(simulator, company)) == EVENTS


async def test_without_a_public_url_or_when_inactive_nothing_stays_subscribed(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    companies = simulator.state.clients_of("demo-regnskapskontor")[2:4]
    ids = [await activated(client, settings, company) for company in companies[:1]]
    await execute(settings, f"update client set active = true where erp_id = {companies[1].id}")
    ids.append(
        (await query(settings, f"select id from client where erp_id = {companies[1].id}"))[0][0]
    )
    async with parts(settings, simulator) as p:
        manager, runner = p.manager, p.runner
        for client_id in ids:
            await manager.reconcile(client_id)
        # One client is switched off: the scheduler picks it up to unsubscribe it.
        await execute(settings, f"update client set active = false where id = {ids[1]}")
        await execute(
            settings, "update client set sync_due_at = :later", later=utcnow() + timedelta(hours=1)
        )
        await execute(settings, "update client set synced_at = :now", now=utcnow())
        assert await runner.tick() == 1
        await runner.drain()
    assert subscriptions_at_tripletex(simulator, companies[1]) == {}
    assert len(subscriptions_at_tripletex(simulator, companies[0])) == EVENTS
    async with parts(settings, simulator, public_url=None) as p:
        manager = p.manager
        assert await manager.reconcile(ids[0]) == "polling"  # the operator removed the URL
    assert subscriptions_at_tripletex(simulator, companies[0]) == {}
    assert (await query(settings, "select count(*) from webhook_subscription"))[0][0] == 0


async def test_polling_mode_rechecks_recent_months_and_webhook_mode_only_noted_ones(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    company = simulator.state.clients_of("demo-regnskapskontor")[2]
    client_id = await activated(client, settings, company)
    async with parts(settings, simulator) as p:
        manager, engine = p.manager, p.engine
        await manager.reconcile(client_id)
        await engine.sync_client(client_id)  # first: full
        march = date(simulator.state.today.year - 1, 3, 1)
        await execute(
            settings,
            "insert into pending_period (client_id, year, month, noted_at, source) "
            f"values ({client_id}, {march.year}, 3, :now, 'webhook')",
            now=utcnow(),
        )
        await engine.sync_client(client_id)
        await execute(settings, f"update client set live_mode = 'fallback' where id = {client_id}")
        await engine.sync_client(client_id)
    runs = await query(
        settings,
        f"select kind, trigger, periods from sync_run where client_id = {client_id} order by id",
    )
    months = len(periods.window(simulator.state.today, 2))
    assert runs == [
        ("full", "activation", months),
        ("incremental", "webhook", 1),  # just the noted month
        ("incremental", "poll", 2),  # no webhooks: the recent months are re-checked
    ]
