"""Live sync through Tripletex webhooks: our app on a real port, the simulator calling it.

The app runs under uvicorn with its scheduler on, the simulator delivers signed callbacks
over real HTTP, and a voucher posted in Tripletex reaches our balances without a poll.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from decimal import Decimal

import httpx
import pytest

from services.change_events import callbacks
from services.connectors import tripletex
from services.settings import Settings, SyncConfig
from services.sync import periods
from simulators.tripletex.model import Company
from simulators.tripletex.webhooks import Delivery, signature
from tests.conftest import PASSWORD, Simulator, add_user, free_port, query
from tests.processes import served_here
from tests.sync_support import simulator_month
from tests.test_logging import every_log_record

pytestmark = pytest.mark.anyio
EVENTS = 6  # voucher.create|update|delete, account.create|update|delete


@pytest.fixture
async def live_app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a real port with webhooks on and a fast scheduler; a logged-in client."""
    from app import create_app

    port = free_port()
    live = dataclasses.replace(
        settings,
        port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        sync=SyncConfig(enabled=True, tick_seconds=0.3),
    )
    await add_user(live, "regnskap@kontor-a.no", "Kontor A AS")
    async with (
        served_here(create_app(live), port),
        httpx.AsyncClient(base_url=live.public_base_url or "", timeout=10) as http,
    ):
        await http.get("/login")
        login = await http.post(
            "/login", data={"email": "regnskap@kontor-a.no", "password": PASSWORD, **form(http)}
        )
        assert login.status_code in (200, 303)
        yield http


def form(http: httpx.AsyncClient) -> dict[str, str]:
    return {"_csrf_token": http.cookies.get("erp_csrf") or ""}


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {check.__name__}")
        await asyncio.sleep(0.1)


async def until_live(settings: Settings, client_id: int) -> None:
    """Until the client is synced once and on webhooks."""

    async def live_and_synced() -> bool:
        rows = await query(
            settings, f"select live_mode, synced_at from client where id = {client_id}"
        )
        return rows[0][0] == "webhooks" and rows[0][1] is not None

    await until(live_and_synced)


async def activate(http: httpx.AsyncClient, settings: Settings, company: Company) -> int:
    response = await http.post(
        "/integrasjoner/ny",
        data={"key": "demo-regnskapskontor", "description": "Kontoret", **form(http)},
    )
    assert response.status_code == 303, response.text
    integration_id = int(response.headers["location"].rsplit("/", 1)[1])
    client_id = (await query(settings, f"select id from client where erp_id = {company.id}"))[0][0]
    switched = await http.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "true", **form(http)},
    )
    assert switched.status_code == 303, switched.text  # no JavaScript: back to the table
    return client_id


def active_subscriptions(simulator: Simulator, company: Company) -> list[str]:
    return sorted(
        s.event
        for s in simulator.state.subscriptions.values()
        if s.company_id == company.id and s.status == "ACTIVE"
    )


async def test_voucher_reaches_balances_through_the_webhook_path(
    live_app: httpx.AsyncClient, settings: Settings, simulator: Simulator
) -> None:
    company = simulator.state.clients_of("demo-regnskapskontor")[4]
    client_id = await activate(live_app, settings, company)

    await until_live(settings, client_id)
    assert len(active_subscriptions(simulator, company)) == EVENTS
    # Every callback is signed with a secret of its own subscription.
    secrets = {s.hmac_shared_secret for s in simulator.state.subscriptions.values()}
    assert len(secrets) == EVENTS and None not in secrets

    today = simulator.state.today
    last_year = date(today.year - 1, 3, 15)  # not a recent month: no poll would look there
    for day in (last_year, last_year, today):  # a burst: two for March, one for this month
        post_voucher(simulator, company, day)
    changed = {periods.Month(last_year.year, 3), periods.Month(today.year, today.month)}

    async def balances_equal() -> bool:
        runs = await query(
            settings,
            f"select result from sync_run where client_id = {client_id} and trigger = 'webhook'",
        )
        if not runs or any(r == "running" for (r,) in runs):
            return False
        for month in changed:
            if await stored(settings, client_id, month) != simulator_month(
                simulator, company.id, month.year, month.month
            ):
                return False
        return True

    await until(balances_equal)
    runs = await query(
        settings,
        "select kind, trigger, periods, result from sync_run "
        f"where client_id = {client_id} order by id",
    )
    assert runs[0][:2] == ("full", "activation")
    webhook_runs = [r for r in runs if r[1] == "webhook"]
    # The burst of three callbacks became syncs of just the two changed months.
    assert sum(periods_ for _, _, periods_, _ in webhook_runs) <= 3
    assert all(kind == "incremental" and result == "ok" for kind, _, _, result in webhook_runs)
    deliveries = [d for d in simulator.state.deliveries if d.event == "voucher.create"]
    assert len(deliveries) == 3 and all(d.status == "delivered" for d in deliveries)


async def test_callbacks_are_verified_and_replays_ignored(
    live_app: httpx.AsyncClient, settings: Settings, simulator: Simulator
) -> None:
    company = simulator.state.clients_of("demo-regnskapskontor")[5]
    client_id = await activate(live_app, settings, company)

    await until_live(settings, client_id)
    post_voucher(simulator, company, simulator.state.today)
    await simulator.state.webhooks.wait_idle()
    delivery = next(d for d in simulator.state.deliveries if d.event == "voucher.create")
    assert delivery.status == "delivered"

    with every_log_record() as captured:
        replay = await live_app.post(
            delivery.target, content=delivery.body, headers=delivery.headers
        )
        assert replay.status_code == 200  # taken in before: Tripletex stops retrying
        tampered = delivery.body.replace(b'"voucher.create"', b'"voucher.delete"')
        forged = await live_app.post(delivery.target, content=tampered, headers=delivery.headers)
        assert forged.status_code == 401
    # Answered callbacks leave no access line (they are counted); refused ones do. (The
    # simulator's own access lines, from the sync the voucher started, are not ours.)
    access = [
        message
        for r in captured.records
        if r.name == "uvicorn.access" and "/webhooks/tripletex/" in (message := r.getMessage())
    ]
    assert len(access) == 1 and access[0].endswith(" 401"), access
    unsigned = {k: v for k, v in delivery.headers.items() if k != "x-request-signature"}
    assert (
        await live_app.post(delivery.target, content=delivery.body, headers=unsigned)
    ).status_code == 401
    unknown = delivery.target.rsplit("/", 1)[0] + "/no-such-hook"
    assert (
        await live_app.post(unknown, content=delivery.body, headers=delivery.headers)
    ).status_code == 404
    metrics = (await live_app.get("/metrics")).text
    assert (
        'erp_webhook_events_total{event="voucher.create",outcome="accepted",system="tripletex"} 1.0'
        in metrics
    )
    duplicate = 'event="voucher.create",outcome="duplicate",system="tripletex"} 1.0'
    assert "erp_webhook_events_total{" + duplicate in metrics
    assert 'outcome="rejected",system="tripletex"} 2.0' in metrics


async def test_deactivation_removes_the_subscriptions(
    live_app: httpx.AsyncClient, settings: Settings, simulator: Simulator
) -> None:
    company = simulator.state.clients_of("demo-regnskapskontor")[6]
    client_id = await activate(live_app, settings, company)

    async def subscribed() -> bool:
        return len(active_subscriptions(simulator, company)) == EVENTS

    await until(subscribed)
    integration_id = (
        await query(settings, f"select integration_id from client where id = {client_id}")
    )[0][0]
    await live_app.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "false", **form(live_app)},
    )

    async def unsubscribed() -> bool:
        rows = await query(
            settings, f"select count(*) from webhook_subscription where client_id = {client_id}"
        )
        return rows[0][0] == 0 and not active_subscriptions(simulator, company)

    await until(unsubscribed)
    mode = await query(settings, f"select live_mode from client where id = {client_id}")
    assert mode[0][0] == "polling"


def post_voucher(simulator: Simulator, company: Company, day: date) -> None:
    simulator.state.post_voucher(company.id, date=day)


async def stored(
    settings: Settings, client_id: int, month: periods.Month
) -> dict[int, tuple[Decimal, Decimal]]:
    from services.balances import trial_balance
    from services.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as db:
            lines = await trial_balance(db, client_id, month.year, month.month, month.month)
    finally:
        await engine.dispose()
    return {
        line.account_number: (line.opening, line.movement)
        for line in lines
        if line.opening or line.movement
    }


async def test_a_deleted_voucher_resyncs_just_the_month_it_was_in(
    live_app: httpx.AsyncClient, settings: Settings, simulator: Simulator
) -> None:
    company = simulator.state.clients_of("demo-regnskapskontor")[7]
    client_id = await activate(live_app, settings, company)

    await until_live(settings, client_id)
    march = date(simulator.state.today.year - 1, 3, 10)
    voucher = simulator.state.post_voucher(company.id, date=march)
    month = periods.Month(march.year, 3)

    async def webhook_runs(count: int) -> bool:
        runs = await query(
            settings,
            f"select result from sync_run where client_id = {client_id} and trigger = 'webhook'",
        )
        return len(runs) >= count and all(r == "ok" for (r,) in runs)

    await until(lambda: webhook_runs(1))
    simulator.state.delete_voucher(voucher.id)  # its callback carries no date

    async def gone_here_too() -> bool:
        ours = await stored(settings, client_id, month)
        return ours == simulator_month(simulator, company.id, month.year, month.month)

    await until(lambda: webhook_runs(2))
    await until(gone_here_too)
    runs = await query(
        settings,
        f"select periods from sync_run where client_id = {client_id} and trigger = 'webhook'",
    )
    assert [periods_ for (periods_,) in runs] == [1, 1]  # not the whole window


async def test_slett_system_removes_the_subscriptions_and_late_callbacks_do_no_harm(
    live_app: httpx.AsyncClient, settings: Settings, simulator: Simulator
) -> None:
    company = simulator.state.clients_of("demo-regnskapskontor")[8]
    client_id = await activate(live_app, settings, company)

    await until_live(settings, client_id)
    simulator.state.post_voucher(company.id)
    await simulator.state.webhooks.wait_idle()
    delivery = next(d for d in simulator.state.deliveries if d.event == "voucher.create")
    integration_id = (
        await query(settings, f"select integration_id from client where id = {client_id}")
    )[0][0]
    deleted = await live_app.post(f"/integrasjoner/{integration_id}/slett", data=form(live_app))
    assert deleted.status_code == 303

    async def unsubscribed_at_tripletex() -> bool:
        return not active_subscriptions(simulator, company)

    await until(unsubscribed_at_tripletex)
    # A callback already on its way when the client went: answered, nothing noted, no error.
    late = dict(delivery.headers, **{"idempotency-key": "late-" + delivery.idempotency_key})
    secret = delivery.subscription.hmac_shared_secret
    assert secret
    late["x-request-signature"] = signature(secret, late["idempotency-key"], delivery.body)
    answer = await live_app.post(delivery.target, content=delivery.body, headers=late)
    assert answer.status_code in (200, 404)
    assert await query(settings, "select count(*) from pending_period") == [(0,)]


Callback = tuple[bytes, dict[str, str]]
GOOD_VOUCHERS = [900_001, 900_002, 900_003, 900_004, 900_005]


def signed_like(delivery: Delivery, key: str, voucher_id: int, day: date) -> Callback:
    """A callback as the simulator would send it for another voucher, properly signed."""
    payload = {
        "subscriptionId": delivery.subscription_id,
        "event": delivery.event,
        "id": voucher_id,
        "value": {"id": voucher_id, "date": day.isoformat()},
    }
    body = json.dumps(payload).encode()
    secret = delivery.subscription.hmac_shared_secret
    assert secret
    headers = dict(delivery.headers, **{"idempotency-key": key})
    headers["x-request-signature"] = signature(secret, key, body)
    return body, headers


async def burst_with_one_bad(
    http: httpx.AsyncClient, settings: Settings, simulator: Simulator, company: Company
) -> tuple[int, list[int], list[int]]:
    """Five good callbacks and one whose voucher id is 10^40, sent at once; returns the bad
    one's status, the good ones' and the good vouchers noted for the client afterwards."""
    client_id = await activate(http, settings, company)
    await until_live(settings, client_id)
    simulator.state.post_voucher(company.id)
    await simulator.state.webhooks.wait_idle()
    delivery = next(d for d in simulator.state.deliveries if d.event == "voucher.create")
    day = simulator.state.today
    good = [signed_like(delivery, f"burst-{v}", v, day) for v in GOOD_VOUCHERS]
    bad = signed_like(delivery, "burst-absurd", 10**40, day)

    answers = await asyncio.gather(
        *(http.post(delivery.target, content=body, headers=headers) for body, headers in good),
        http.post(delivery.target, content=bad[0], headers=bad[1]),
    )

    noted = await query(
        settings,
        f"select voucher_id from voucher_month where client_id = {client_id} "
        f"and voucher_id between {GOOD_VOUCHERS[0]} and {GOOD_VOUCHERS[-1]} order by voucher_id",
    )
    return answers[-1].status_code, [a.status_code for a in answers[:-1]], [v for (v,) in noted]


async def test_a_callback_with_an_absurd_id_is_refused_and_the_others_are_noted(
    live_app: httpx.AsyncClient,
    settings: Settings,
    simulator: Simulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Long enough for the whole burst to be written as one batch, as under load.
    monkeypatch.setattr(callbacks, "GATHER_SECONDS", 0.3)
    company = simulator.state.clients_of("demo-regnskapskontor")[2]

    with every_log_record() as captured:
        bad, good, noted = await burst_with_one_bad(live_app, settings, simulator, company)

    assert bad == 401  # refused like any malformed callback
    assert good == [200] * 5
    assert noted == GOOD_VOUCHERS
    receiver = "services.change_events.callbacks"
    refusals = [r.getMessage() for r in captured.records if r.name == receiver]
    assert any("rejected: malformed callback: id out of range" in m for m in refusals), refusals
    secrets = [s.hmac_shared_secret for s in simulator.state.subscriptions.values()]
    assert not any(s and s in line for s in secrets for line in captured.lines)


async def test_one_callback_that_fails_to_be_written_fails_alone(
    live_app: httpx.AsyncClient,
    settings: Settings,
    simulator: Simulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A value that gets past the parser and breaks the database write (here the absurd id,
    with the parser's bound lifted) fails its own callback, not the batch it came with."""
    monkeypatch.setattr(tripletex, "MAX_ERP_ID", 10**50)
    monkeypatch.setattr(callbacks, "GATHER_SECONDS", 0.3)
    company = simulator.state.clients_of("demo-regnskapskontor")[3]

    bad, good, noted = await burst_with_one_bad(live_app, settings, simulator, company)

    assert bad == 500  # not answered 2xx: Tripletex will retry it
    assert good == [200] * 5
    assert noted == GOOD_VOUCHERS
