"""The change log: recorded with the data, read through GET /api/v1/changes from a cursor."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from litestar.testing import AsyncTestClient

from services import publishing
from services.settings import Settings
from services.sync import pending, periods
from tests import api_support
from tests.api_support import bearer, create_token
from tests.conftest import Simulator, create_integration, htmx, query
from tests.sync_support import simulator_month, stored_month, sync_engine

pytestmark = pytest.mark.anyio

api = api_support.api
office_b = api_support.office_b
no_settle_delay = api_support.no_settle_delay


async def one_client(
    client: AsyncTestClient, settings: Settings, simulator: Simulator, index: int = 0
) -> tuple[int, int]:
    if not await query(settings, "select id from integration"):
        await create_integration(client)
    company = simulator.state.clients_of("demo-regnskapskontor")[index]
    ((client_id,),) = await query(settings, f"select id from client where erp_id = {company.id}")
    return client_id, company.id


async def all_changes(api: AsyncTestClient, token: str, cursor: str | None = None) -> tuple:
    """Every change after `cursor`, following pages; returns (changes, the cursor to poll)."""
    changes: list[dict] = []
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        response = await api.get("/api/v1/changes", params=params, headers=bearer(token))
        assert response.status_code == 200, response.text
        body = response.json()
        changes += body["data"]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            return changes, cursor


async def test_full_sync_records_the_accounts_and_every_month_with_data(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, erp_id = await one_client(client, settings, simulator)
    token = await create_token(client)
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="manual")
    changes, _ = await all_changes(api, token)
    assert [c["kind"] for c in changes if c["kind"] != "balances"] == ["accounts"]
    window = periods.window(simulator.state.today, 2)
    recorded = {(c["year"], c["month"]) for c in changes if c["kind"] == "balances"}
    # A year whose opening balances were stored is one change of the whole year.
    covered = {(m.year, m.month) for m in window if (m.year, None) in recorded} | recorded
    with_data = {
        (m.year, m.month)
        for m in window
        if any(row.balance_change for row in simulator.state.balance_sheet(erp_id, m.start, m.end))
    }
    assert with_data <= covered
    assert {(y, m) for y, m in recorded if m is not None} <= with_data
    assert all(c["client_id"] == client_id for c in changes)
    ids = [c["id"] for c in changes]
    assert ids == sorted(ids)


async def test_syncing_unchanged_data_records_nothing(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, _ = await one_client(client, settings, simulator)
    token = await create_token(client)
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="manual")
        _, cursor = await all_changes(api, token)
        await engine.sync_client(client_id, trigger="manual", full=True)
    assert (await all_changes(api, token, cursor))[0] == []


async def test_a_new_voucher_is_one_change_of_its_month(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, erp_id = await one_client(client, settings, simulator)
    token = await create_token(client)
    today = simulator.state.today
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="manual")
        _, cursor = await all_changes(api, token)
        simulator.state.post_voucher(
            erp_id, postings=[(1920, Decimal("125.50")), (3000, Decimal("-125.50"))]
        )
        await engine.sync_client(client_id, trigger="poll")
    changes, _ = await all_changes(api, token, cursor)
    assert [(c["kind"], c["year"], c["month"]) for c in changes] == [
        ("balances", today.year, today.month)
    ]


async def test_a_voucher_last_year_is_a_change_of_its_month_and_of_this_years_opening(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, erp_id = await one_client(client, settings, simulator)
    token = await create_token(client)
    today = simulator.state.today
    march = date(today.year - 1, 3, 10)
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="manual")
        _, cursor = await all_changes(api, token)
        # Balance accounts: the bank balance carried into this year moves too.
        simulator.state.post_voucher(
            erp_id, date=march, postings=[(1920, Decimal("1000.00")), (2400, Decimal("-1000.00"))]
        )
        async with engine.session_factory() as db:
            await pending.note_months(db, client_id, [periods.Month(march.year, 3)])
            await db.commit()
        await engine.sync_client(client_id, trigger="webhook")
        ours = await stored_month(engine, client_id, today.year, 1)
    assert ours == simulator_month(simulator, erp_id, today.year, 1)
    changes, _ = await all_changes(api, token, cursor)
    assert [(c["kind"], c["year"], c["month"]) for c in changes] == [
        ("balances", march.year, 3),
        ("balances", today.year, None),  # every month of this year opens differently
    ]


async def test_a_new_account_is_an_accounts_change(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, erp_id = await one_client(client, settings, simulator)
    token = await create_token(client)
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(client_id, trigger="manual")
        _, cursor = await all_changes(api, token)
        simulator.state.create_account(erp_id, 1999, "Ny bankkonto")
        await engine.sync_client(client_id, trigger="poll")
    changes, _ = await all_changes(api, token, cursor)
    assert [c["kind"] for c in changes] == ["accounts"]


async def test_switches_record_activation_and_publication(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, _ = await one_client(client, settings, simulator)
    ((integration_id,),) = await query(settings, "select id from integration")
    token = await create_token(client)
    row = f"/integrasjoner/{integration_id}/klienter/{client_id}"
    await client.post(f"{row}/active", data={"on": "true"}, headers=htmx(client))
    await client.post(f"{row}/active", data={"on": "true"}, headers=htmx(client))  # no change
    await client.post(f"{row}/active", data={"on": "false"}, headers=htmx(client))
    await client.post(f"{row}/send_data", data={"on": "false"}, headers=htmx(client))
    hidden, _ = await all_changes(api, token)
    assert hidden == []  # SEND DATA off: nothing of this client is shown
    await client.post(f"{row}/send_data", data={"on": "true"}, headers=htmx(client))
    changes, _ = await all_changes(api, token)
    assert [c["kind"] for c in changes] == [
        "client_activated",
        "client_deactivated",
        "client_published",
    ]


async def test_activate_all_records_one_change_per_client(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings
) -> None:
    await create_integration(client)
    ((integration_id,),) = await query(settings, "select id from integration")
    token = await create_token(client)
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    changes, cursor = await all_changes(api, token)
    reachable = await query(settings, "select id from client where access_lost = false")
    assert sorted(c["client_id"] for c in changes) == sorted(r[0] for r in reachable)
    assert {c["kind"] for c in changes} == {"client_activated"}
    await client.post(f"/integrasjoner/{integration_id}/deaktiver-alle", headers=htmx(client))
    after, _ = await all_changes(api, token, cursor)
    assert len(after) == len(changes) and {c["kind"] for c in after} == {"client_deactivated"}


async def test_persistent_sync_failure_is_a_change(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    client_id, _ = await one_client(client, settings, simulator)
    token = await create_token(client)
    simulator.state.outage_status = 503
    async with sync_engine(settings, simulator, max_retries=0) as engine:
        for attempt in range(1, 5):
            assert await engine.sync_client(client_id, trigger="schedule") == "failed"
            changes, _ = await all_changes(api, token)
            # Passing trouble is not news; the third failure in a row is, once.
            expected = [("sync_failed", client_id)] if attempt >= 3 else []
            assert [(c["kind"], c["client_id"]) for c in changes] == expected, attempt


async def test_cursor_latest_starts_from_now(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings
) -> None:
    await create_integration(client)
    ((integration_id,),) = await query(settings, "select id from integration")
    token = await create_token(client)
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    latest = (
        await api.get("/api/v1/changes", params={"cursor": "latest"}, headers=bearer(token))
    ).json()
    assert latest["data"] == [] and not latest["has_more"]
    assert (await all_changes(api, token, latest["next_cursor"]))[0] == []


async def test_changes_wait_a_moment_before_they_are_handed_out(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, monkeypatch
) -> None:
    from datetime import timedelta

    monkeypatch.setattr(publishing, "SETTLE", timedelta(hours=1))
    await create_integration(client)
    ((integration_id,),) = await query(settings, "select id from integration")
    token = await create_token(client)
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    assert (await all_changes(api, token))[0] == []


async def test_other_office_sees_none_of_the_changes(
    client: AsyncTestClient,
    office_b: AsyncTestClient,
    api: AsyncTestClient,
    settings: Settings,
) -> None:
    await create_integration(client)
    ((integration_id,),) = await query(settings, "select id from integration")
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    token_a = await create_token(client)
    token_b = await create_token(office_b)
    assert (await all_changes(api, token_a))[0]
    assert (await all_changes(api, token_b))[0] == []


def test_months_are_those_of_the_window() -> None:
    assert periods.window(date(2026, 3, 15), 2)[0] == periods.Month(2025, 1)
