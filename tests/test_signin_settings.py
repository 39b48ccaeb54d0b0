"""Innstillinger → Pålogging: the office's identity provider as an administrator sets it up,
the secret kept encrypted and never shown, every change in the audit log, Test tilkobling
against a real provider on loopback, through the outbound guard."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from litestar.testing import AsyncTestClient

from services.crypto import KeyVault
from services.settings import OidcConfig, Settings
from tests import outbound_support
from tests.conftest import PASSWORD, csrf, execute, free_port, htmx, login, query
from tests.oidc_support import Provider, running_provider
from tests.outbound_support import FakeDns

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # the provider's authlib
]

PAGE = "/innstillinger/palogging"
dns = outbound_support.dns  # host names this test resolves as it says
SECRET = "hemmelig-klientnøkkel-123"


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider() as running:
        yield running


def form(client: AsyncTestClient, **values: Any) -> dict[str, Any]:
    data = {
        "enabled": "on",
        "display_name": "Microsoft",
        "issuer": "https://login.microsoftonline.com/0000-tenant/v2.0",
        "client_id": "app-id-123",
        "client_secret": SECRET,
        "default_role": "lesetilgang",
        "role_claim": "",
        "role_map": "",
        "_csrf_token": csrf(client),
    }
    data.update(values)
    return {k: v for k, v in data.items() if v is not None}


async def stored(settings: Settings) -> dict[str, Any]:
    rows = await query(
        settings,
        "select oidc_enabled, oidc_display_name, oidc_issuer, oidc_client_id, "
        "oidc_client_secret_ciphertext, oidc_role_claim, oidc_role_map, sso_required, "
        "totp_required from signin_settings",
    )
    names = [
        "enabled",
        "display_name",
        "issuer",
        "client_id",
        "ciphertext",
        "role_claim",
        "role_map",
        "sso_required",
        "totp_required",
    ]
    return dict(zip(names, rows[0], strict=True)) if rows else {}


async def changes(settings: Settings) -> list[dict[str, Any]]:
    rows = await query(
        settings,
        "select details from audit_event where kind = 'signin_settings.changed' order by id",
    )
    return [json.loads(details) for (details,) in rows]


async def test_the_page_shows_the_fields_and_the_redirect_uri(client: AsyncTestClient) -> None:
    page = await client.get(PAGE)
    assert page.status_code == 200
    assert '<a href="/innstillinger/palogging" aria-current="page">Pålogging</a>' in page.text
    for label in (
        "Navn på leverandøren",
        "Utsteder (issuer)",
        "Klient-ID",
        "Klienthemmelighet",
        "Opprett brukere ved første innlogging",
        "Standardrolle",
        "Rollekrav (claim)",
        "Rollekobling",
        "Krev innlogging via identitetsleverandøren",
        "Krev tofaktor for passordinnlogging",
        "Test tilkobling",
    ):
        assert label in page.text, label
    assert 'value="http://testserver.local/login/oidc/callback"' in page.text
    assert "Ikke lagret ennå." in page.text


async def test_saving_keeps_the_secret_encrypted_and_never_shows_it(
    client: AsyncTestClient, settings: Settings
) -> None:
    saved = await client.post(PAGE, data=form(client))
    assert saved.status_code == 200, saved.text
    assert "Endringene er lagret." in saved.text
    assert SECRET not in saved.text
    assert "Lagret." in saved.text
    row = await stored(settings)
    assert row["issuer"] == "https://login.microsoftonline.com/0000-tenant/v2.0"
    assert SECRET not in row["ciphertext"]
    assert KeyVault(settings.encryption_keys).decrypt(row["ciphertext"]) == SECRET
    page = await client.get(PAGE)
    assert SECRET not in page.text
    assert "Krev innlogging via Microsoft" in page.text

    # Saved again without a secret: the stored one stays.
    again = await client.post(PAGE, data=form(client, client_secret="", display_name="Entra ID"))
    assert "Endringene er lagret." in again.text
    assert (await stored(settings))["ciphertext"] == row["ciphertext"]


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"issuer": "https://login.microsoftonline.com/1111-tenant/v2.0"}, id="issuer"),
        pytest.param({"client_id": "app-id-456"}, id="client-id"),
    ],
)
async def test_a_new_issuer_or_client_id_needs_the_secret_again(
    client: AsyncTestClient, settings: Settings, changed: dict[str, str]
) -> None:
    """The stored secret is the old application's: it is not sent to another provider."""
    await client.post(PAGE, data=form(client))
    row = await stored(settings)
    answer = await client.post(PAGE, data=form(client, client_secret="", **changed))
    assert answer.status_code == 422
    assert "Skriv inn klienthemmeligheten på nytt når utsteder eller klient-ID endres." in (
        answer.text
    )
    assert 'id="signin-client_secret-error"' in answer.text
    assert await stored(settings) == row
    again = await client.post(
        PAGE, data=form(client, client_secret="ny-hemmelighet-789", **changed)
    )
    assert again.status_code == 200, again.text
    assert (
        KeyVault(settings.encryption_keys).decrypt((await stored(settings))["ciphertext"])
        == "ny-hemmelighet-789"
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        pytest.param(
            {"issuer": "https://login.microsoftonline.com/" + "t" * 480 + "/v2.0"},
            "issuer",
            "Utstederens adresse kan ha høyst 500 tegn.",
            id="issuer",
        ),
        pytest.param(
            {"client_id": "a" * 256}, "client_id", "Klient-ID-en kan ha høyst 255 tegn.", id="id"
        ),
        pytest.param(
            {"client_secret": "s" * 501},
            "client_secret",
            "Klienthemmeligheten kan ha høyst 500 tegn",
            id="secret",
        ),
        pytest.param(
            # 400 characters, but 1,200 bytes: encrypted, longer than the column holds.
            {"client_secret": "€" * 400},
            "client_secret",
            "Klienthemmeligheten kan ha høyst 500 tegn",
            id="secret-non-ascii",
        ),
        pytest.param(
            {"display_name": "M" * 101}, "display_name", "Navnet kan ha høyst 100 tegn.", id="name"
        ),
    ],
)
async def test_too_long_a_field_is_said_not_a_server_error(
    client: AsyncTestClient, settings: Settings, values: dict[str, str], field: str, message: str
) -> None:
    """Each is held to its column's size (PostgreSQL refuses a longer value outright)."""
    answer = await client.post(PAGE, data=form(client, **values))
    assert answer.status_code == 422, answer.text
    assert message in answer.text
    assert f'id="signin-{field}-error"' in answer.text
    assert await stored(settings) == {}
    # Just within the limits, the same form is saved.
    longest = {
        "issuer": "https://login.microsoftonline.com/" + "t" * 461 + "/v2.0",
        "client_id": "a" * 255,
        "client_secret": "s" * 500,
        "display_name": "M" * 100,
    }
    saved = await client.post(PAGE, data=form(client, **{field: longest[field]}))
    assert saved.status_code == 200, saved.text
    assert (await stored(settings))["enabled"] in (True, 1)


async def test_every_change_is_in_the_audit_log_the_secret_as_endret(
    client: AsyncTestClient, settings: Settings
) -> None:
    await client.post(PAGE, data=form(client))
    await client.post(
        PAGE,
        data=form(
            client,
            client_secret="en-ny-hemmelighet-456",
            totp_required="on",
            role_claim="groups",
            role_map="gid-1 = Administrator\ngid-2 = regnskapsfører",
        ),
    )
    await client.post(
        PAGE,
        data=form(
            client,
            client_secret="",
            totp_required="on",
            role_claim="groups",
            role_map="gid-1 = Administrator\ngid-2 = regnskapsfører",
        ),
    )
    first, second = await changes(settings)  # the third changed nothing: not recorded
    assert first["Utsteder (issuer)"] == {
        "before": "",
        "after": "https://login.microsoftonline.com/0000-tenant/v2.0",
    }
    assert first["Innlogging via identitetsleverandør"] == {"before": False, "after": True}
    assert first["Klienthemmelighet"] == "endret"
    assert second == {
        "Klienthemmelighet": "endret",
        "Krev tofaktor for passordinnlogging": {"before": False, "after": True},
        "Rollekrav (claim)": {"before": "", "after": "groups"},
        "Rollekobling": {
            "before": "",
            "after": "gid-1 = Administrator\ngid-2 = Regnskapsfører",
        },
    }
    log = json.dumps(await changes(settings), ensure_ascii=False)
    assert SECRET not in log and "en-ny-hemmelighet-456" not in log
    assert (await stored(settings))["role_map"] == json.dumps(
        {"gid-1": "administrator", "gid-2": "regnskapsforer"}
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        pytest.param({"issuer": ""}, "issuer", "Fyll inn utstederens adresse", id="no-issuer"),
        pytest.param({"client_id": ""}, "client_id", "Fyll inn klient-ID-en", id="no-client-id"),
        pytest.param(
            {"client_secret": ""}, "client_secret", "Fyll inn klienthemmeligheten", id="no-secret"
        ),
        pytest.param({"display_name": ""}, "display_name", "Fyll inn navnet", id="no-name"),
        pytest.param(
            {"issuer": "http://login.example.com"}, "issuer", "Bruk https://", id="plain-http"
        ),
        pytest.param(
            {"role_claim": "groups", "role_map": "gid-1 = Administrator\ngid-2 = sjef"},
            "role_map",
            "Linje 2: «sjef» er ingen rolle",
            id="unknown-role",
        ),
        pytest.param(
            {"role_map": "gid-1 = Administrator"},
            "role_claim",
            "Fyll inn hvilket krav",
            id="map-without-claim",
        ),
    ],
)
async def test_a_wrong_form_says_what_is_wrong_and_saves_nothing(
    client: AsyncTestClient, settings: Settings, values: dict[str, str], field: str, message: str
) -> None:
    answer = await client.post(PAGE, data=form(client, **values))
    assert answer.status_code == 422
    assert message in answer.text
    assert f'id="signin-{field}-error"' in answer.text
    assert await stored(settings) == {}
    assert await changes(settings) == []


async def test_the_issuer_must_be_on_the_public_internet(
    client: AsyncTestClient, settings: Settings
) -> None:
    from app import create_app

    production = dataclasses.replace(settings, outbound_allow_private=False)
    async with AsyncTestClient(create_app(production)) as admin:
        await login(admin, "regnskap@kontor-a.no")
        for issuer in (
            "https://127.0.0.1/",
            "https://login.internal/x",
            "https://169.254.169.254/",
        ):
            answer = await admin.post(PAGE, data=form(admin, issuer=issuer))
            assert answer.status_code == 422, issuer
            assert "Adressen er ikke tillatt" in answer.text, issuer


async def test_test_tilkobling_says_what_the_provider_offers(
    client: AsyncTestClient, provider: Provider
) -> None:
    answer = await client.post(
        PAGE + "/test", data=form(client, issuer=provider.url), headers=htmx(client)
    )
    assert answer.status_code == 200
    assert answer.text.strip().startswith('<div id="signin-test">')  # the answer alone
    assert "Fant leverandøren." in answer.text
    assert f"<code>{provider.url}/oauth2/authorize</code>" in answer.text
    assert f"<code>{provider.url}/oauth2/token</code>" in answer.text
    assert "Signeringsnøkler</dt><dd>1 (RS256)" in answer.text
    # Without htmx: the page, the form as it was posted (the secret is never written back).
    page = await client.post(PAGE + "/test", data=form(client, issuer=provider.url))
    assert "Fant leverandøren." in page.text
    assert f'value="{provider.url}"' in page.text
    assert SECRET not in page.text


async def test_test_tilkobling_names_a_provider_that_does_not_answer(
    client: AsyncTestClient,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    answer = await client.post(PAGE + "/test", data=form(client, issuer=closed))
    assert f"Fikk ikke kontakt med {closed}/.well-known/openid-configuration" in answer.text
    assert 'role="alert"' in answer.text


async def test_test_tilkobling_names_an_address_that_is_no_provider(
    client: AsyncTestClient, provider: Provider
) -> None:
    answer = await client.post(PAGE + "/test", data=form(client, issuer=provider.url + "/feil"))
    assert "svarte ikke med et gyldig OpenID Connect-oppsett" in answer.text


async def test_test_tilkobling_goes_through_the_outbound_guard(
    settings: Settings, dns: FakeDns
) -> None:
    """With private addresses not allowed (production), an issuer that resolves to this
    machine is refused when connecting, and a loopback address before that."""
    from app import create_app
    from tests.conftest import add_user

    dns.answers["idp.kontoret.example"] = ["127.0.0.1"]
    production = dataclasses.replace(settings, outbound_allow_private=False)
    await add_user(settings, "regnskap@kontor-a.no", "Kontor A AS")
    async with AsyncTestClient(create_app(production)) as admin:
        await login(admin, "regnskap@kontor-a.no")
        answer = await admin.post(
            PAGE + "/test", data=form(admin, issuer="https://idp.kontoret.example")
        )
        assert (
            "Fikk ikke kontakt med https://idp.kontoret.example/.well-known/openid-configuration: "
            "Adressen er ikke tillatt (ikke en offentlig adresse)."
        ) in answer.text
        assert dns.lookups["idp.kontoret.example"] == 1  # judged by where it points
        answer = await admin.post(PAGE + "/test", data=form(admin, issuer="https://127.0.0.1:8443"))
        assert "Utstederen kan ikke brukes: Adressen er ikke tillatt" in answer.text


async def test_requiring_sso_needs_the_administrator_signed_in_through_it(
    client: AsyncTestClient, settings: Settings
) -> None:
    from services.oidc import subject_key

    answer = await client.post(PAGE, data=form(client, sso_required="on"))
    assert answer.status_code == 422
    assert "Logg inn via identitetsleverandøren selv først" in answer.text
    assert await stored(settings) == {}

    issuer = "https://login.microsoftonline.com/0000-tenant/v2.0"
    await execute(
        settings,
        f"update user_account set oidc_subject = '{subject_key(issuer, 'admin-sub')}'",
    )
    answer = await client.post(PAGE, data=form(client, sso_required="on"))
    assert answer.status_code == 200, answer.text
    assert (await stored(settings))["sso_required"] in (True, 1)


async def test_the_provider_cannot_be_switched_off_while_it_is_required(
    client: AsyncTestClient, settings: Settings
) -> None:
    """Required with no provider to sign in through, nobody could sign in at all."""
    from services.oidc import subject_key

    issuer = "https://login.microsoftonline.com/0000-tenant/v2.0"
    await execute(
        settings,
        f"update user_account set oidc_subject = '{subject_key(issuer, 'admin-sub')}'",
    )
    assert (await client.post(PAGE, data=form(client, sso_required="on"))).status_code == 200
    answer = await client.post(
        PAGE, data=form(client, enabled=None, client_secret="", sso_required="on")
    )
    assert answer.status_code == 422
    assert "Slå på og sett opp innlogging via identitetsleverandør før du krever den" in (
        answer.text
    )
    assert 'id="signin-sso_required-error"' in answer.text
    assert (await stored(settings))["enabled"] in (True, 1)
    # Both at once: passwords back on, then the provider off.
    answer = await client.post(PAGE, data=form(client, enabled=None, client_secret=""))
    assert answer.status_code == 200, answer.text
    row = await stored(settings)
    assert row["enabled"] in (False, 0) and row["sso_required"] in (False, 0)


async def test_the_operators_provider_is_shown_and_not_changed_here(
    settings: Settings, client: AsyncTestClient
) -> None:
    from app import create_app

    operated = dataclasses.replace(
        settings,
        oidc=OidcConfig(
            issuer="https://login.microsoftonline.com/drift/v2.0",
            client_id="drift-app",
            client_secret="drift-hemmelighet",
            display_name="Microsoft",
        ),
    )
    async with AsyncTestClient(create_app(operated)) as admin:
        await login(admin, "regnskap@kontor-a.no")
        page = await admin.get(PAGE)
        assert "satt av driftsansvarlig" in page.text
        assert "<code>https://login.microsoftonline.com/drift/v2.0</code>" in page.text
        assert 'name="issuer"' not in page.text
        assert "drift-hemmelighet" not in page.text
        saved = await admin.post(
            PAGE, data=form(admin, issuer="https://annen.example.com", totp_required="on")
        )
        assert saved.status_code == 200, saved.text
    row = await stored(settings)
    assert row["issuer"] == "" and row["ciphertext"] is None
    assert row["totp_required"] in (True, 1)


# -- the command line: the operator's way back in ------------------------------------------


def app_command(
    settings: Settings, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": settings.encryption_keys[0],
        "TRIPLETEX_CONSUMER_TOKEN": "cli-test-consumer-token",
        "DATA_DIR": str(settings.data_dir),
        "LOG_FORMAT": "text",
    }
    env.pop("DEMO", None)
    return subprocess.run(
        [sys.executable, "app.py", *args],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        input=stdin,
        text=True,
        capture_output=True,
        timeout=120,
    )


async def test_the_operator_can_turn_sso_required_off_from_the_command_line(
    settings: Settings, client: AsyncTestClient
) -> None:
    """An office whose provider stopped working (a secret that expired at the provider)
    while it required single sign-on: create-user says what stands in the way, and
    `signin-settings --allow-passwords` turns the rule off, recorded in the audit log."""
    from app import create_app
    from services.oidc import subject_key

    issuer = "https://login.microsoftonline.com/0000-tenant/v2.0"
    await execute(
        settings, f"update user_account set oidc_subject = '{subject_key(issuer, 'admin-sub')}'"
    )
    assert (await client.post(PAGE, data=form(client, sso_required="on"))).status_code == 200

    made = await anyio.to_thread.run_sync(
        lambda: app_command(
            settings,
            "create-user",
            "--email",
            "drift@kontor-a.no",
            "--office",
            "Kontor A AS",
            stdin=PASSWORD + "\n",
        )
    )
    assert made.returncode == 0, made.stderr
    assert "python app.py signin-settings --allow-passwords --office 'Kontor A AS'" in made.stdout

    async with AsyncTestClient(create_app(settings)) as operator:
        await operator.get("/login")
        data = {"email": "drift@kontor-a.no", "password": PASSWORD, "_csrf_token": csrf(operator)}
        assert (await operator.post("/login", data=data)).status_code == 403

        allowed = await anyio.to_thread.run_sync(
            lambda: app_command(
                settings, "signin-settings", "--allow-passwords", "--office", "Kontor A AS"
            )
        )
        assert allowed.returncode == 0, allowed.stderr
        assert "passwords work again" in allowed.stdout
        answer = await operator.post("/login", data=data, follow_redirects=False)
        assert answer.status_code == 303, answer.text

    assert (await stored(settings))["sso_required"] in (False, 0)
    [(label, details)] = await query(
        settings,
        "select actor_label, details from audit_event where kind = 'signin_settings.changed' "
        "and actor_user_id is null",
    )
    assert label == "driftsansvarlig (kommandolinje)"
    assert json.loads(details) == {
        "Krev innlogging via identitetsleverandør": {"before": True, "after": False}
    }
    unknown = await anyio.to_thread.run_sync(
        lambda: app_command(settings, "signin-settings", "--allow-passwords", "--office", "Ingen")
    )
    assert unknown.returncode == 1 and "no office named 'Ingen'" in unknown.stderr
