"""Ny integrasjon: the key is checked against Tripletex at once; bad input saves nothing."""

from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import Simulator, create_integration, csrf, htmx, query

pytestmark = pytest.mark.anyio


async def integration_count(settings: Settings) -> int:
    return (await query(settings, "select count(*) from integration"))[0][0]


async def post_new(client: AsyncTestClient, key: str, description: str = "Klienter"):
    return await client.post(
        "/integrasjoner/ny",
        data={"key": key, "description": description},
        headers=htmx(client),
    )


async def test_form_shows_the_guide_labels(client: AsyncTestClient) -> None:
    page = (await client.get("/integrasjoner/ny")).text
    for label in (
        "Ny integrasjon",
        "Webbaserte regnskapssystem",
        "Tripletex",
        "Last ned guide for Tripletex",
        "Egen brukernøkkel",
        "Beskrivelse (Ikke fyll inn personopplysninger i feltet)",
        "Opprett",
        "Avbryt",
    ):
        assert label in page


async def test_accountant_key_lists_every_client(
    client: AsyncTestClient, simulator: Simulator
) -> None:
    integration_id = await create_integration(client, description="Klienter Bergen")
    page = (await client.get(f"/integrasjoner/{integration_id}")).text
    clients = simulator.state.clients_of("demo-regnskapskontor")
    assert "Tripletex - Klienter Bergen" in page
    assert f"Inaktive klienter: <strong>{len(clients)}</strong>" in page
    assert "Aktive klienter: <strong>0</strong>" in page


async def test_own_company_key_has_exactly_the_office_itself(
    client: AsyncTestClient, simulator: Simulator
) -> None:
    integration_id = await create_integration(client, key="demo-eget-selskap", description="Eget")
    page = (await client.get(f"/integrasjoner/{integration_id}")).text
    assert "Integrasjonen er opprettet med 1 klient. Slå på AKTIV" in page  # said once
    assert "1 klient</p>" in page.replace("\n", "").replace("  ", "")
    assert simulator.state.office().name in page
    again = (await client.get(f"/integrasjoner/{integration_id}")).text
    assert "Integrasjonen er opprettet" not in again


@pytest.mark.parametrize(
    ("key", "description", "message"),
    [
        pytest.param("", "Klienter", "Fyll inn brukernøkkelen", id="empty-key"),
        pytest.param(
            "feil-nokkel", "Klienter", "Tripletex godtok ikke brukernøkkelen", id="wrong-key"
        ),
        pytest.param(
            "demo-regnskapskontor", "post@kontor.no", "e-postadresse", id="email-in-description"
        ),
        pytest.param("demo-regnskapskontor", "Ola 01019012057", "fødselsnummer", id="national-id"),
    ],
)
async def test_bad_input_gets_a_message_and_saves_nothing(
    client: AsyncTestClient, settings: Settings, key: str, description: str, message: str
) -> None:
    response = await post_new(client, key, description)
    assert response.status_code == 422
    assert message in response.text
    assert 'role="alert"' in response.text
    assert await integration_count(settings) == 0


async def test_unreachable_tripletex_saves_nothing(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    simulator.state.outage_status = 503  # every request answers 503
    response = await post_new(client, "demo-regnskapskontor")
    assert response.status_code == 422
    assert "Fikk ikke kontakt med Tripletex" in response.text
    assert await integration_count(settings) == 0


async def test_key_pasted_over_two_lines_is_joined(client: AsyncTestClient) -> None:
    response = await post_new(client, "demo-regnskaps\n  kontor ")
    assert response.headers.get("HX-Redirect", "").startswith("/integrasjoner/")


async def test_key_is_encrypted_at_rest_and_never_shown(
    client: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_integration(client)
    if settings.database_url.startswith("sqlite"):
        # Every byte on disk, the write-ahead log included.
        path = settings.database_url.split(":///", 1)[1]
        files = [Path(path), Path(path + "-wal")]
        stored = b"".join(f.read_bytes() for f in files if f.exists())
    else:
        rows = await query(settings, "select integration::text from integration")
        stored = repr(rows).encode()
    assert b"demo-regnskapskontor" not in stored
    assert b"gAAAAA" in stored  # a Fernet token is what is stored
    edit = (await client.get(f"/integrasjoner/{integration_id}/endre")).text
    assert "demo-regnskapskontor" not in edit
    assert "…ntor" in edit  # only the last four characters


async def test_htmx_success_redirects_the_browser(client: AsyncTestClient) -> None:
    response = await post_new(client, "demo-regnskapskontor")
    assert response.status_code == 200
    assert response.headers["HX-Redirect"].startswith("/integrasjoner/")


async def test_plain_form_post_without_csrf_is_refused(client: AsyncTestClient) -> None:
    response = await client.post(
        "/integrasjoner/ny", data={"key": "demo-regnskapskontor", "description": "x"}
    )
    assert response.status_code == 403
    assert csrf(client)  # the token existed; it just was not sent
