"""Ny integrasjon: the key is checked against Tripletex at once; bad input saves nothing."""

import re
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import Simulator, add_user, create_integration, csrf, htmx, login, query

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


def input_tag(html: str, name: str) -> str:
    found = re.search(rf'<input id="{name}"[^>]*>', html)
    assert found, f"no #{name} field"
    return found.group(0)


@pytest.mark.parametrize(
    ("key", "description", "in_error"),
    [
        pytest.param("demo-regnskapskontor", "post@kontor.no", "description", id="description"),
        pytest.param("feil-nokkel", "Klienter", "key", id="key"),
    ],
)
async def test_a_refused_form_keeps_the_key_and_focuses_the_field_in_error(
    client: AsyncTestClient, key: str, description: str, in_error: str
) -> None:
    response = await post_new(client, key, description)
    assert response.status_code == 422
    key_field = input_tag(response.text, "key")
    assert f'value="{key}"' in key_field  # Tripletex shows a new key only once
    assert 'type="password"' in key_field
    assert f'value="{description}"' in input_tag(response.text, "description")
    focused = re.findall(
        r'<input id="(\w+)"[^>]*\bautofocus\b[^>]*\bdata-focus-on-load\b', response.text
    )
    assert focused == [in_error]
    assert 'aria-invalid="true"' in input_tag(response.text, in_error)


async def test_a_fresh_form_has_no_key_and_no_focus_marker(client: AsyncTestClient) -> None:
    page = (await client.get("/integrasjoner/ny")).text
    assert "value=" not in input_tag(page, "key")
    assert "autofocus" not in page


@pytest.mark.parametrize(
    "description",
    [
        pytest.param("Kari Nordmann 91234567", id="mobile"),
        pytest.param("Kari Nordmann +47 912 34 567", id="country-code-grouped"),
        pytest.param("Ring Kari på 912 34 567", id="grouped"),
        pytest.param("Sentralbord 22 33 44 55", id="landline-in-pairs"),
        pytest.param("Kari 0047 41234567", id="0047"),
    ],
)
async def test_a_phone_number_in_the_description_is_refused(
    client: AsyncTestClient, settings: Settings, description: str
) -> None:
    response = await post_new(client, "demo-regnskapskontor", description)
    assert response.status_code == 422
    assert (
        "Beskrivelsen ser ut til å inneholde et telefonnummer. "
        "Ikke fyll inn personopplysninger i feltet." in response.text
    )
    assert await integration_count(settings) == 0


@pytest.mark.parametrize(
    "description",
    [
        pytest.param("Orgnr 934228391", id="org-number"),
        pytest.param("Orgnr 934 228 391", id="org-number-grouped"),
        pytest.param("Regnskap 2023 2024", id="years"),
        pytest.param("Årsoppgjør 31122024", id="date"),
        pytest.param("Konto 1503.12.34567", id="bank-account"),
        pytest.param("Servicenummer 800 12 345", id="service-number"),
    ],
)
async def test_numbers_that_are_no_phone_number_are_accepted(
    client: AsyncTestClient, settings: Settings, description: str
) -> None:
    response = await post_new(client, "demo-regnskapskontor", description)
    assert response.headers.get("HX-Redirect", "").startswith("/integrasjoner/"), response.text
    assert await integration_count(settings) == 1


async def test_the_same_key_twice_is_refused_with_a_link_until_confirmed(
    client: AsyncTestClient, settings: Settings
) -> None:
    existing = await create_integration(client, description="Bergen")
    response = await post_new(client, "demo-regnskapskontor", "Bergen igjen")
    assert response.status_code == 422
    assert (
        f'Denne nøkkelen er allerede brukt i <a href="/integrasjoner/{existing}">'
        "Tripletex - Bergen</a>. Å legge den inn to ganger gir to integrasjoner som "
        "synkroniserer de samme klientene." in response.text
    )
    assert 'value="demo-regnskapskontor"' in input_tag(response.text, "key")
    assert re.search(r'<p id="same-key"[^>]*\bautofocus\b', response.text)
    assert f'name="same_key_as" value="{existing}">Opprett likevel</button>' in response.text
    assert await integration_count(settings) == 1

    # Confirming another integration than the one named is no confirmation.
    wrong = await client.post(
        "/integrasjoner/ny",
        data={"key": "demo-regnskapskontor", "description": "x", "same_key_as": "999"},
        headers=htmx(client),
    )
    assert "allerede brukt i" in wrong.text
    assert await integration_count(settings) == 1

    confirmed = await client.post(
        "/integrasjoner/ny",
        data={
            "key": "demo-regnskapskontor",
            "description": "Bergen igjen",
            "same_key_as": str(existing),
        },
        headers=htmx(client),
    )
    assert confirmed.headers["HX-Redirect"].startswith("/integrasjoner/")
    assert await integration_count(settings) == 2


async def test_keys_to_other_clients_of_the_same_office_are_no_duplicate(
    client: AsyncTestClient, settings: Settings
) -> None:
    # The own-company key belongs to the same company as the accountant key, but reaches
    # another company (a different kind of key): both integrations are wanted.
    await create_integration(client, description="Klienter")
    await create_integration(client, key="demo-eget-selskap", description="Eget")
    assert await integration_count(settings) == 2


async def test_another_offices_integration_with_the_key_is_not_named(
    client: AsyncTestClient, settings: Settings
) -> None:
    await create_integration(client, description="Kontor A")
    await add_user(settings, "regnskap@kontor-b.no", "Kontor B AS")
    await login(client, "regnskap@kontor-b.no")
    response = await post_new(client, "demo-regnskapskontor", "Kontor B")
    assert response.headers.get("HX-Redirect", "").startswith("/integrasjoner/")
    assert await integration_count(settings) == 2
