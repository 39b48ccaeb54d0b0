"""Which accounting years a client's saldobalanse is there for: one rule for the client page,
the API and the sync window, also around new year, when "this year" changes before the next
sync has fetched it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from litestar.testing import AsyncTestClient

from services import balances
from services.settings import Settings
from services.sync import periods
from tests import api_support
from tests.api_support import bearer, create_token
from tests.conftest import Simulator, create_integration, execute, query
from tests.sync_support import sync_engine

pytestmark = pytest.mark.anyio

api = api_support.api
no_settle_delay = api_support.no_settle_delay


def noon(day: date) -> datetime:
    """A sync's moment on `day` in the server's calendar (stored as UTC, as syncs store it)."""
    return datetime(day.year, day.month, day.day, 12).astimezone(UTC).replace(tzinfo=None)


@pytest.mark.parametrize("years", [1, 2, 3])
def test_a_sync_on_new_years_eve_is_offered_with_its_years_on_new_years_day(
    monkeypatch: pytest.MonkeyPatch, years: int
) -> None:
    """The window a sync fetches is the years offered for it afterwards, whatever day it is
    when the saldobalanse is asked for; a new year is offered once a sync has fetched it."""
    eve, new_years_day = date(2025, 12, 31), date(2026, 1, 1)
    monkeypatch.setattr(periods, "current_date", lambda: new_years_day)
    for synced_on in (eve, new_years_day):
        fetched = sorted({month.year for month in periods.window(synced_on, years)})
        offer = balances.offer(noon(synced_on), years)
        assert offer.years == fetched == periods.kept_years(synced_on, years)
        assert offer.default == balances.Period(synced_on.year, synced_on.month, synced_on.month)
    assert balances.offer(noon(eve), 2).years == [2024, 2025]
    assert balances.offer(noon(new_years_day), 2).years == [2025, 2026]
    # Never synced: what the first sync, today, will fetch.
    assert balances.offer(None, 2).years == [2025, 2026]


async def test_page_and_api_offer_the_years_of_a_sync_on_new_years_eve_in_the_new_year(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    """Last synced on 31 December, asked any day after (1 January the first): both show the
    years that sync kept, and neither offers the new year before a sync has fetched it."""
    integration_id = await create_integration(client)
    company = simulator.state.clients_of("demo-regnskapskontor")[0]
    ((client_id,),) = await query(settings, f"select id from client where erp_id = {company.id}")
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "ok"
    new_year = date.today().year
    eve = f"{new_year - 1}-12-31 12:00:00"
    await execute(settings, f"update client set synced_at = '{eve}' where id = {client_id}")
    url = f"/integrasjoner/{integration_id}/klienter/{client_id}/oversikt"
    token = await create_token(client)

    page = (await client.get(url)).text
    offered = sorted(int(y) for y in re.findall(r'<option value="(\d{4})"', page))
    assert offered == [new_year - 2, new_year - 1]
    assert f'<option value="{new_year - 1}" selected>' in page  # December, the last sync's month
    for year in range(new_year - 3, new_year + 2):
        on_page = await client.get(url, params={"aar": str(year), "fra": "12", "til": "12"})
        by_api = await api.get(
            f"/api/v1/clients/{client_id}/balances",
            params={"month": f"{year}-12"},
            headers=bearer(token),
        )
        kept = year in offered
        assert on_page.status_code == (200 if kept else 400), year
        assert by_api.status_code == (200 if kept else 400), (year, by_api.text)
        if not kept:
            span = f"{new_year - 2}–{new_year - 1}"
            assert by_api.json()["message"] == f"month: only the accounting years {span} are kept"


async def test_a_client_never_synced_is_answered_for_this_year_and_last(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings
) -> None:
    """Nothing synced yet: the API answers for the years the first sync will fetch, with no
    lines (rewrite guard: the behaviour before one rule)."""
    await create_integration(client)
    ((client_id,),) = (await query(settings, "select min(id) from client"))[:1]
    token = await create_token(client)
    this_year = date.today().year
    for year, status in ((this_year - 2, 400), (this_year - 1, 200), (this_year, 200)):
        response = await api.get(
            f"/api/v1/clients/{client_id}/balances",
            params={"month": f"{year}-01"},
            headers=bearer(token),
        )
        assert response.status_code == status, (year, response.text)
        if status == 200:
            body = response.json()
            assert body["lines"] == [] and body["totals"]["closing"] == "0.00"
