"""Office B guessing ids must never see or change office A's integrations or clients."""

import re

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import add_user, create_integration, htmx, login

pytestmark = pytest.mark.anyio


@pytest.fixture
async def intruder(settings: Settings):
    from app import create_app

    await add_user(settings, "nysgjerrig@kontor-b.no", "Kontor B AS")
    async with AsyncTestClient(create_app(settings)) as test_client:
        await login(test_client, "nysgjerrig@kontor-b.no")
        yield test_client


async def test_other_office_cannot_read_or_change_anything(
    client: AsyncTestClient, intruder: AsyncTestClient
) -> None:
    integration_id = await create_integration(client, description="Kontor A sine klienter")
    page = (await client.get(f"/integrasjoner/{integration_id}")).text
    client_id = int(re.findall(r'<tr id="client-(\d+)"', page)[0])
    base = f"/integrasjoner/{integration_id}"

    assert "Kontor A sine klienter" not in (await intruder.get("/integrasjoner")).text
    for path in (base, f"{base}/endre", f"{base}/slett", f"{base}/klienter"):
        assert (await intruder.get(path)).status_code == 404, path
    for path, data in (
        (f"{base}/klienter/{client_id}/active", {"on": "true"}),
        (f"{base}/aktiver-alle", {}),
        (f"{base}/deaktiver-alle", {}),
        (f"{base}/oppdater", {}),
        (f"{base}/endre", {"key": "demo-regnskapskontor", "description": "kapret"}),
        (f"{base}/slett", {}),
    ):
        response = await intruder.post(path, data=data, headers=htmx(intruder))
        assert response.status_code == 404, path

    after = (await client.get(base)).text
    assert "Tripletex - Kontor A sine klienter" in after
    assert "Aktive klienter: <strong>0</strong>" in after


async def test_client_id_from_another_integration_is_not_found(client: AsyncTestClient) -> None:
    first = await create_integration(client, description="Første")
    second = await create_integration(client, key="demo-eget-selskap", description="Andre")
    other_client = int(
        re.findall(r'<tr id="client-(\d+)"', (await client.get(f"/integrasjoner/{second}")).text)[0]
    )
    response = await client.post(
        f"/integrasjoner/{first}/klienter/{other_client}/active",
        data={"on": "true"},
        headers=htmx(client),
    )
    assert response.status_code == 404
