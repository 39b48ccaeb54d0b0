"""Endre system with a new key: a key that some of today's clients would lose access with is
asked about first (how many it reaches), the key waiting encrypted in the session, never in
the page; and putting the right key back leaves exactly the clients there were."""

import re

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import Simulator, create_integration, csrf, htmx, query

pytestmark = pytest.mark.anyio

ACCOUNTANT_KEY = "demo-regnskapskontor"
OWN_COMPANY_KEY = "demo-eget-selskap"


async def change(client: AsyncTestClient, integration_id: int, **data: str):
    return await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"description": "Klienter", **data},
        headers=htmx(client),
    )


async def clients(settings: Settings, integration_id: int) -> list[tuple[int, bool]]:
    """(erp id, without access) of each client row, by erp id."""
    rows = await query(
        settings,
        f"select erp_id, access_lost from client where integration_id = {integration_id} "
        "order by erp_id",
    )
    return [(int(erp_id), bool(lost)) for erp_id, lost in rows]


async def key_end(settings: Settings, integration_id: int) -> str:
    return (
        await query(settings, f"select key_last4 from integration where id = {integration_id}")
    )[0][0]


async def test_a_key_reaching_fewer_clients_is_asked_about_and_saved_only_when_confirmed(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    before = await clients(settings, integration_id)
    assert len(before) == 42

    asked = await change(client, integration_id, key=OWN_COMPANY_KEY)
    assert asked.status_code == 200
    assert "HX-Redirect" not in asked.headers
    assert "Denne nøkkelen når 0 av 42 klienter." in asked.text
    assert "42 klienter mister tilgangen" in asked.text
    assert "regnskapskontorets eget selskap" in asked.text
    assert "Lagre likevel" in asked.text
    assert OWN_COMPANY_KEY not in asked.text  # not echoed: it waits in the session
    assert "autofocus" in asked.text
    # Nothing changed yet.
    assert await clients(settings, integration_id) == before
    assert await key_end(settings, integration_id) == "ntor"
    # The waiting key is encrypted in the server-side session, like a saved key.
    stored = b"".join(
        bytes(data) for (data,) in await query(settings, "select data from web_session")
    )
    assert b"pending_key" in stored
    assert OWN_COMPANY_KEY.encode() not in stored

    confirmed = await change(client, integration_id, confirm="key")
    assert confirmed.headers["HX-Redirect"] == f"/integrasjoner/{integration_id}"
    assert await key_end(settings, integration_id) == "skap"
    after = await clients(settings, integration_id)
    office = simulator.state.office_company_id
    assert [lost for erp_id, lost in after if erp_id != office] == [True] * 42
    page = (await client.get(f"/integrasjoner/{integration_id}")).text
    assert "Endringene er lagret." in page
    assert "Ingen tilgang" in page
    stored = b"".join(
        bytes(data) for (data,) in await query(settings, "select data from web_session")
    )
    assert b"pending_key" not in stored  # used once, then gone

    # A second "Lagre likevel" has nothing left to save.
    again = await change(client, integration_id, confirm="key")
    assert again.status_code == 422
    assert "Den nye nøkkelen er ikke husket lenger" in again.text


async def test_the_old_key_back_leaves_exactly_the_clients_there_were(
    client: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_integration(client)
    before = await clients(settings, integration_id)
    await change(client, integration_id, key=OWN_COMPANY_KEY)
    await change(client, integration_id, confirm="key")
    assert len(await clients(settings, integration_id)) == 43  # the office's own company came in

    # The right key again: it reaches every client that has access now, so no question; the
    # own company the wrong key brought in (untouched) goes instead of staying without access.
    back = await change(client, integration_id, key=ACCOUNTANT_KEY)
    assert back.headers["HX-Redirect"] == f"/integrasjoner/{integration_id}"
    assert await clients(settings, integration_id) == before
    assert await key_end(settings, integration_id) == "ntor"
    page = (await client.get(f"/integrasjoner/{integration_id}")).text
    assert "Ingen tilgang" not in page
    assert "Inaktive klienter: <strong>42</strong>" in page


async def test_a_client_someone_switched_on_is_kept_and_asked_about(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    await change(client, integration_id, key=OWN_COMPANY_KEY)
    await change(client, integration_id, confirm="key")
    office = simulator.state.office_company_id
    ((office_row,),) = await query(
        settings,
        f"select id from client where integration_id = {integration_id} and erp_id = {office}",
    )
    await client.post(
        f"/integrasjoner/{integration_id}/klienter/{office_row}/active",
        data={"on": "true"},
        headers=htmx(client),
    )
    asked = await change(client, integration_id, key=ACCOUNTANT_KEY)
    assert "Denne nøkkelen når 42 av 43 klienter." in asked.text
    assert "1 klient mister tilgangen" in asked.text
    await change(client, integration_id, confirm="key")
    assert (office, True) in await clients(settings, integration_id)  # kept, without access


async def test_a_key_reaching_one_client_fewer_says_how_many(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    lost = simulator.state.clients_of(ACCOUNTANT_KEY)[3]
    simulator.state.revoke_client(ACCOUNTANT_KEY, lost.id)
    asked = await change(client, integration_id, key=ACCOUNTANT_KEY)
    assert "Denne nøkkelen når 41 av 42 klienter." in asked.text
    assert "1 klient mister tilgangen" in asked.text
    assert "eget selskap" not in asked.text
    assert not any(lost for _, lost in await clients(settings, integration_id))


async def test_a_key_reaching_every_client_is_saved_without_asking(
    client: AsyncTestClient,
) -> None:
    integration_id = await create_integration(client)
    response = await change(client, integration_id, key=ACCOUNTANT_KEY, description="Nytt")
    assert response.headers["HX-Redirect"] == f"/integrasjoner/{integration_id}"


async def test_a_waiting_key_is_only_for_its_own_integration(
    client: AsyncTestClient, settings: Settings
) -> None:
    accountant = await create_integration(client)
    own = await create_integration(client, key=OWN_COMPANY_KEY, description="Eget")
    await change(client, accountant, key=OWN_COMPANY_KEY)
    elsewhere = await change(client, own, confirm="key")
    assert elsewhere.status_code == 422
    assert "Den nye nøkkelen er ikke husket lenger" in elsewhere.text
    assert len(await clients(settings, own)) == 1
    # ...and it was forgotten: the integration it was for does not take it either.
    assert (await change(client, accountant, confirm="key")).status_code == 422
    assert await key_end(settings, accountant) == "ntor"


async def test_the_question_works_without_javascript(
    client: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_integration(client)
    base = f"/integrasjoner/{integration_id}"
    asked = await client.post(
        f"{base}/endre",
        data={"key": OWN_COMPANY_KEY, "description": "Klienter", "_csrf_token": csrf(client)},
    )
    assert asked.status_code == 200
    assert "<h1>Endre system</h1>" in asked.text
    assert re.search(
        r'<button type="submit" class="danger" name="confirm" value="key">', asked.text
    )
    confirmed = await client.post(
        f"{base}/endre",
        data={"confirm": "key", "description": "Klienter", "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert confirmed.status_code == 303
    assert await key_end(settings, integration_id) == "skap"


async def test_a_refused_new_key_is_not_sent_back(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    response = await change(client, integration_id, key="ikke-en-nokkel")
    assert response.status_code == 422
    assert "ikke-en-nokkel" not in response.text
    assert re.search(r'<input id="key"[^>]*\bautofocus\b', response.text)
