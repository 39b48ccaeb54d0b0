"""PowerOffice Go through the web, with the simulator on a real port: the onboarding from Ny
integrasjon (approve, cancel, a forged or replayed state, an expired token, PowerOffice
down), Oppdater klientliste and Endre system as re-onboarding, Slett system forgetting the
keys, and PowerOffice clients beside Tripletex ones in the list and the API."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from litestar.testing import AsyncTestClient

from services.crypto import KeyVault
from services.settings import Settings
from tests import api_support
from tests.api_support import bearer, create_token
from tests.conftest import PowerOffice, create_integration, csrf, htmx, query

pytestmark = pytest.mark.anyio
api = api_support.api
no_settle_delay = api_support.no_settle_delay


async def start(client: AsyncTestClient, description: str = "PowerOffice-klienter") -> str:
    """Koble til PowerOffice Go from Ny integrasjon: the URL the browser is sent to."""
    response = await client.post(
        "/integrasjoner/ny",
        data={"system": "poweroffice", "description": description},
        headers=htmx(client),
    )
    assert response.status_code == 200, response.text
    url = response.headers["hx-redirect"]
    assert "/ApiAuthV2?" in url
    return url


async def answer(
    poweroffice: PowerOffice, url: str, action: str = "approve", clients: list[int] | None = None
) -> str:
    """The user at PowerOffice Go's page: approve (these clients) or cancel. Returns our
    callback URL PowerOffice redirects back to, as a path on our app."""
    async with httpx.AsyncClient() as browser:
        page = await browser.get(url)
        assert page.status_code == 200
        token = parse_qs(urlsplit(url).query)["token"][0]
        chosen = clients if clients is not None else sorted(poweroffice.state.clients)
        form = {"token": token, "action": action, "client": [str(i) for i in chosen]}
        back = await browser.post(url.split("?")[0], data=form)
    assert back.status_code == 302
    location = urlsplit(back.headers["location"])
    assert location.path == "/integrasjoner/tilkobling"
    return f"{location.path}?{location.query}"


async def integrations(settings: Settings, system: str = "poweroffice") -> list[tuple]:
    return await query(settings, f"SELECT id FROM integration WHERE system = '{system}'")


async def test_approving_brings_the_chosen_clients_in_with_their_keys_encrypted(
    client: AsyncTestClient, settings: Settings, poweroffice: PowerOffice
) -> None:
    chosen = sorted(poweroffice.state.clients)[:5]
    callback = await answer(poweroffice, await start(client), clients=chosen)
    landed = await client.get(callback, follow_redirects=False)
    assert landed.status_code == 303
    page = await client.get(landed.headers["location"])
    assert "5 klienter er koblet til fra PowerOffice Go" in page.text
    assert "Aktive klienter oppdateres hvert 10. minutt" in page.text
    for simulator_id in chosen:
        assert poweroffice.state.clients[simulator_id].name.replace("&", "&amp;") in page.text
    # The notice is said once.
    again = await client.get(landed.headers["location"])
    assert "er koblet til fra PowerOffice Go" not in again.text

    rows = await query(settings, "SELECT org_number, key_ciphertext, active FROM client")
    keys = {c.org_no: c.client_key for c in poweroffice.state.clients.values()}
    vault = KeyVault(settings.encryption_keys)
    assert len(rows) == 5
    for org, ciphertext, active in rows:
        assert not active  # the accountant switches on the ones to sync
        assert keys[org] not in ciphertext and vault.decrypt(ciphertext) == keys[org]

    # The same answer again (back button, a replay) stores nothing more.
    replay = await client.get(callback)
    assert "hører ikke til en tilkobling som ble startet i denne" in replay.text
    assert len(await query(settings, "SELECT id FROM client")) == 5


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("cancel", "Tilkoblingen ble avbrutt i PowerOffice Go. Ingenting er lagret."),
        ("forged state", "hører ikke til en tilkobling som ble startet i denne"),
        ("expired token", "godtok ikke tilkoblingen (den er utløpt eller allerede brukt)"),
        ("another session", "hører ikke til en tilkobling som ble startet i denne"),
    ],
)
async def test_a_failed_onboarding_says_why_and_stores_nothing(
    client: AsyncTestClient,
    settings: Settings,
    poweroffice: PowerOffice,
    how: str,
    message: str,
) -> None:
    url = await start(client, description="Avdeling nord")
    callback = await answer(poweroffice, url, action="refuse" if how == "cancel" else "approve")
    genuine = callback
    if how == "forged state":
        state = parse_qs(urlsplit(callback).query)["state"][0]
        callback = callback.replace(state, state[:-4] + "AAAA")
    elif how == "expired token":
        poweroffice.state.clock.advance(timedelta(minutes=11).total_seconds())
    elif how == "another session":
        client.cookies.clear()  # the redirect reaches a browser that did not start it
        from tests.conftest import login

        await login(client, "regnskap@kontor-a.no")
    page = await client.get(callback)
    assert page.status_code == 422
    assert message in page.text
    if how != "another session":  # that browser typed nothing
        # Back on Ny integrasjon with what was typed, PowerOffice Go still chosen.
        assert 'value="Avdeling nord"' in page.text
        assert 'value="poweroffice" data-onboarding checked' in page.text
    assert await integrations(settings) == []
    assert await query(settings, "SELECT id FROM client") == []
    if how == "forged state":
        # A forged redirect does not spoil the user's own: the genuine one still lands.
        landed = await client.get(genuine, follow_redirects=False)
        assert landed.status_code == 303
        assert len(await integrations(settings)) == 1


async def test_poweroffice_down_at_the_start_is_said_on_the_form(
    client: AsyncTestClient, settings: Settings, poweroffice: PowerOffice
) -> None:
    poweroffice.state.set_faults(error_rate=1.0, error_kinds=("503",))
    response = await client.post(
        "/integrasjoner/ny",
        data={"system": "poweroffice", "description": "Klienter", "_csrf_token": csrf(client)},
    )
    assert response.status_code == 422
    assert "Fikk ikke kontakt med PowerOffice Go akkurat nå" in response.text
    assert await integrations(settings) == []


async def test_a_description_with_personal_data_is_refused_before_leaving(
    client: AsyncTestClient, poweroffice: PowerOffice
) -> None:
    response = await client.post(
        "/integrasjoner/ny",
        data={
            "system": "poweroffice",
            "description": "kari@kontor.no",
            "_csrf_token": csrf(client),
        },
    )
    assert response.status_code == 422
    assert "e-postadresse" in response.text
    assert "hx-redirect" not in response.headers


async def test_without_htmx_a_page_on_our_site_sends_the_browser_on(
    client: AsyncTestClient, poweroffice: PowerOffice
) -> None:
    # A plain form post may not redirect to another site under our CSP (form-action 'self').
    response = await client.post(
        "/integrasjoner/ny",
        data={"system": "poweroffice", "description": "", "_csrf_token": csrf(client)},
    )
    assert response.status_code == 200
    assert "Fortsett til PowerOffice Go" in response.text
    assert "/ApiAuthV2?token=" in response.text


async def test_oppdater_klientliste_and_endre_system_onboard_again(
    client: AsyncTestClient, settings: Settings, poweroffice: PowerOffice
) -> None:
    ids = sorted(poweroffice.state.clients)
    landed = await client.get(await answer(poweroffice, await start(client), clients=ids[:3]))
    page_url = landed.url.path
    integration_id = int(page_url.rstrip("/").rsplit("/", 1)[1])
    await execute_sql(settings, "UPDATE client SET active = TRUE")
    before = {
        org: ciphertext
        for org, ciphertext in await query(
            settings, "SELECT org_number, key_ciphertext FROM client"
        )
    }

    # Oppdater klientliste goes to PowerOffice Go again; the clients added since come in.
    refresh = await client.post(f"/integrasjoner/{integration_id}/oppdater", headers=htmx(client))
    assert "/ApiAuthV2?" in refresh.headers["hx-redirect"]
    back = await client.get(
        await answer(poweroffice, refresh.headers["hx-redirect"], clients=ids[:5])
    )
    assert (
        "Klientlisten er oppdatert fra PowerOffice Go: 2 nye klienter, "
        "3 klienter fikk tilkoblingen fornyet." in back.text
    )
    rows = await query(settings, "SELECT org_number, key_ciphertext, active, is_new FROM client")
    assert len(rows) == 5
    new = [org for org, _, active, is_new in rows if is_new]
    assert len(new) == 2 and all(not active for org, _, active, _ in rows if org in new)
    # The clients kept their AKTIV switch; all five have the key PowerOffice gave them.
    assert sum(1 for _, _, active, _ in rows if active) == 3
    keys = {c.org_no: c.client_key for c in poweroffice.state.clients.values()}
    vault = KeyVault(settings.encryption_keys)
    for org, ciphertext, _, _ in rows:
        assert vault.decrypt(ciphertext) == keys[org]
    assert set(before) < {org for org, *_ in rows}

    # Endre system: Lagre keeps the clients; "Lagre og koble til … på nytt" re-onboards.
    edit = await client.get(f"/integrasjoner/{integration_id}/endre")
    assert "Lagre og koble til PowerOffice Go på nytt" in edit.text
    assert 'name="key"' not in edit.text  # no key to paste for PowerOffice Go
    saved = await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"description": "Nord", "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    again = await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"description": "Nord", "action": "reonboard"},
        headers=htmx(client),
    )
    assert "/ApiAuthV2?" in again.headers["hx-redirect"]
    cancelled = await client.get(
        await answer(poweroffice, again.headers["hx-redirect"], action="refuse")
    )
    # A cancelled re-onboarding lands on the integration, which is unchanged.
    assert cancelled.url.path == page_url
    assert "Tilkoblingen ble avbrutt i PowerOffice Go" in cancelled.text
    assert "PowerOffice Go - Nord" in cancelled.text
    assert len(await query(settings, "SELECT id FROM client")) == 5

    # Slett system forgets the integration, its clients and their keys.
    deleted = await client.post(
        f"/integrasjoner/{integration_id}/slett",
        data={"_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert deleted.status_code == 303
    assert await query(settings, "SELECT key_ciphertext FROM client") == []
    assert await integrations(settings) == []


async def test_both_systems_side_by_side_in_the_list_and_the_api(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, poweroffice: PowerOffice
) -> None:
    tripletex_id = await create_integration(client)
    ids = sorted(poweroffice.state.clients)[:4]
    await client.get(await answer(poweroffice, await start(client), clients=ids))
    listing = await client.get("/integrasjoner")
    assert "Tripletex - Klienter" in listing.text
    assert "PowerOffice Go - PowerOffice-klienter" in listing.text

    token = await create_token(client)
    listed = await api.get("/api/v1/clients", headers=bearer(token), params={"limit": 200})
    assert listed.status_code == 200, listed.text
    by_system: dict[str, int] = {}
    for row in listed.json()["data"]:
        by_system[row["system"]] = by_system.get(row["system"], 0) + 1
    tripletex_clients = await query(
        settings, f"SELECT count(*) FROM client WHERE integration_id = {tripletex_id}"
    )
    assert by_system == {"tripletex": tripletex_clients[0][0], "poweroffice": 4}


async def execute_sql(settings: Settings, sql: str) -> None:
    from tests.conftest import execute

    await execute(settings, sql)


async def test_demo_voucher_is_booked_in_poweroffice_and_brings_the_poll_forward(
    client: AsyncTestClient, settings: Settings, poweroffice: PowerOffice
) -> None:
    import dataclasses

    from app import create_app
    from tests.conftest import execute, login

    chosen = sorted(poweroffice.state.clients)[:1]
    await client.get(await answer(poweroffice, await start(client), clients=chosen))
    [(integration_id, client_id)] = await query(settings, "SELECT integration_id, id FROM client")
    await execute(settings, "UPDATE client SET active = TRUE, sync_due_at = NULL")
    books = poweroffice.state.clients[chosen[0]]
    vouchers = len(books.vouchers)
    url = f"/integrasjoner/{integration_id}/klienter/{client_id}"
    async with AsyncTestClient(create_app(dataclasses.replace(settings, demo=True))) as demo:
        await login(demo, "regnskap@kontor-a.no")
        page = await demo.get(f"{url}/oversikt")
        assert "Demo: bokfør et bilag i PowerOffice Go" in page.text
        notice = await demo.post(
            f"/demo/integrasjoner/{integration_id}/klienter/{client_id}/bilag",
            headers=htmx(demo),
        )
    assert notice.status_code == 200, notice.text
    assert "Bilag bokført i PowerOffice Go" in notice.text
    assert "beløp 1\xa0250,00 kr" in notice.text
    assert len(books.vouchers) == vouchers + 1
    assert [(line.account_no, str(line.amount)) for line in books.vouchers[-1].lines] == [
        (1500, "1250.00"),
        (3000, "-1000.00"),
        (2700, "-250.00"),
    ]
    # PowerOffice Go calls nobody: the demo makes the client due for its poll now.
    [(due,)] = await query(settings, f"SELECT sync_due_at FROM client WHERE id = {client_id}")
    assert due is not None
