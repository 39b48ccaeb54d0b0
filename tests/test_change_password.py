"""Endre passord: checks the current password and ends the user's other sessions."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import PASSWORD, csrf, login, query
from tests.login_support import change_password

pytestmark = pytest.mark.anyio

EMAIL = "regnskap@kontor-a.no"
NEW = "Blåbærsyltetøy på lørdag"


async def logged_in(client: AsyncTestClient) -> bool:
    return (await client.get("/integrasjoner", follow_redirects=False)).status_code == 200


async def test_the_page_is_linked_from_the_header_and_has_labelled_fields(
    client: AsyncTestClient,
) -> None:
    assert 'href="/konto"' in (await client.get("/integrasjoner")).text
    page = (await client.get("/konto/passord")).text  # the old address leads to Min konto
    assert "<h1>Min konto</h1>" in page and "Endre passord" in page
    for field, label in (
        ("current", "Nåværende passord"),
        ("new", "Nytt passord"),
        ("repeat", "Gjenta nytt passord"),
    ):
        assert f'<label for="{field}">{label}</label>' in page
        assert f'id="{field}" name="{field}" type="password"' in page
    assert 'name="_csrf_token"' in page


async def test_changing_ends_the_other_sessions_and_keeps_this_one(
    client: AsyncTestClient, settings: Settings
) -> None:
    from app import create_app

    async with AsyncTestClient(create_app(settings)) as other_device:
        await login(other_device, EMAIL)
        assert await logged_in(other_device)
        before = client.cookies.get("erp_session")

        response = await change_password(client, PASSWORD, NEW)
        assert response.status_code == 200
        assert "Passordet er endret." in response.text

        assert not await logged_in(other_device)
        assert await logged_in(client)
        assert client.cookies.get("erp_session") != before  # this one under a fresh id
        assert len(await query(settings, "select key from web_session")) == 1

        await other_device.get("/login")
        refused = await other_device.post(
            "/login", data={"email": EMAIL, "password": PASSWORD, "_csrf_token": csrf(other_device)}
        )
        assert refused.status_code == 422
        await login(other_device, EMAIL, NEW)


async def test_a_wrong_current_password_changes_nothing(
    client: AsyncTestClient, settings: Settings
) -> None:
    response = await change_password(client, "ikke-det-riktige-passordet", NEW)
    assert response.status_code == 422
    assert "Passordet er feil." in response.text
    assert 'id="current-error"' in response.text
    assert await logged_in(client)
    await login(client, EMAIL, PASSWORD)


async def test_the_new_password_must_be_repeated_alike(client: AsyncTestClient) -> None:
    response = await change_password(client, PASSWORD, NEW, repeat=NEW + "x")
    assert response.status_code == 422
    assert "Passordene er ikke like." in response.text
    await login(client, EMAIL, PASSWORD)


async def test_guessing_the_current_password_is_throttled_as_logins_are(
    client: AsyncTestClient,
) -> None:
    """A stolen session must not become a way to guess the password."""
    for _ in range(4):
        assert (await change_password(client, "gjetning-nummer-x", NEW)).status_code == 422
    locked = await change_password(client, "gjetning-nummer-x", NEW)
    assert locked.status_code == 429
    assert "For mange mislykkede forsøk. Prøv igjen om 1 minutt." in locked.text
    assert (await change_password(client, PASSWORD, NEW)).status_code == 429


async def test_the_page_needs_a_login(settings: Settings) -> None:
    from app import create_app

    async with AsyncTestClient(create_app(settings)) as anonymous:
        response = await anonymous.get("/konto", follow_redirects=False)
        assert response.headers["location"] == "/login"
