"""Filtering the client table by status, and the integration list's attention counts."""

import html as html_text
import re

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import Simulator, create_integration, csrf, htmx, query
from tests.sync_support import sync_engine

pytestmark = pytest.mark.anyio


async def names(client: AsyncTestClient, integration_id: int, status: str) -> list[str]:
    html = (
        await client.get(
            f"/integrasjoner/{integration_id}", params={"status": status}, headers=htmx(client)
        )
    ).text
    found = re.findall(r'<td class="name"><a[^>]*>([^<]+)', html)
    return [html_text.unescape(n).strip() for n in found]


async def test_filter_by_status_and_count_what_needs_attention(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client, description="Status")
    healthy = simulator.state.clients_of("demo-regnskapskontor")[0]
    refused = simulator.state.company(simulator.state.no_api_access_client_id)
    ids = dict(await query(settings, "select erp_id, id from client"))
    async with sync_engine(settings, simulator) as engine:
        for company in (healthy, refused):
            await client.post(
                f"/integrasjoner/{integration_id}/klienter/{ids[company.id]}/active",
                data={"on": "true"},
                headers=htmx(client),
            )
            await engine.sync_client(ids[company.id], trigger="activation")

    assert await names(client, integration_id, "ok") == [healthy.name]
    assert await names(client, integration_id, "feil") == [refused.name]
    inactive = await names(client, integration_id, "inaktiv")
    assert len(inactive) == min(50, len(ids) - 2)
    assert await names(client, integration_id, "nokkelfeil") == []

    listing = (await client.get("/integrasjoner")).text
    assert "Trenger oppfølging: <strong>1</strong>" in listing

    simulator.state.grant_new_client("demo-regnskapskontor")
    await client.post(
        f"/integrasjoner/{integration_id}/oppdater",
        data={"_csrf_token": csrf(client)},
    )
    assert len(await names(client, integration_id, "ny")) == 1
    assert "Nye: <strong>1</strong>" in (await client.get("/integrasjoner")).text


async def test_filter_is_kept_by_sorting_and_paging_links(
    client: AsyncTestClient,
) -> None:
    integration_id = await create_integration(client)
    html = (await client.get(f"/integrasjoner/{integration_id}", params={"status": "inaktiv"})).text
    assert 'value="inaktiv" selected' in html
    sort_links = re.findall(r'hx-get="(/integrasjoner/\d+\?[^"]*sort=[^"]*)"', html)
    assert sort_links and all("status=inaktiv" in link for link in sort_links)
    unknown = await client.get(
        f"/integrasjoner/{integration_id}", params={"status": "<script>"}, headers=htmx(client)
    )
    assert unknown.status_code == 200 and "<script>" not in unknown.text
