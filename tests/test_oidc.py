"""Single sign-on against a real OpenID Provider on loopback (tests/oidc_support.py): the
code flow with PKCE, state and nonce over real HTTP, first-time matching, creating people,
role mapping, and every refusal with its Norwegian message and no session."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from services.settings import OidcConfig, Settings
from tests.conftest import PASSWORD, add_user, csrf, execute, free_port, query
from tests.oidc_support import Provider, configure, location_path, running_provider
from tests.processes import served_here

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # the provider's authlib
]

OFFICE = "Kontor A AS"
APP = "http://testserver.local"  # the test client's address: our redirect URI is under it
CALLBACK = f"{APP}/login/oidc/callback"


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider() as running:
        running.register(CALLBACK)
        yield running


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """The app, nobody signed in; the office's administrator has a password."""
    from app import create_app

    await add_user(settings, "admin@kontor-a.no", OFFICE)
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
async def office(settings: Settings, provider: Provider, app: AsyncTestClient) -> int:
    return await configure(settings, OFFICE, provider)


async def press_button(client: AsyncTestClient, office_id: int) -> httpx.Response:
    """Logg inn med …: the app's answer (a redirect to the provider, or back to /login)."""
    page = await client.get("/login")
    assert page.status_code == 200
    return await client.get(f"/login/oidc/{office_id}", follow_redirects=False)


async def at_provider(authorize_url: str, sub: str) -> str:
    """The provider's page, as the person sees it, and its Authorize: the callback URL."""
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(authorize_url)
        assert page.status_code == 200 and "Authorize" in page.text, page.text
        answer = await browser.post(authorize_url, data={"sub": sub})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


async def sign_in(client: AsyncTestClient, office_id: int, sub: str) -> tuple[httpx.Response, str]:
    """The whole sign-in: the app's answer to the provider's callback, and its URL."""
    start = await press_button(client, office_id)
    assert start.status_code == 303, start.text
    callback = await at_provider(start.headers["location"], sub)
    assert callback.startswith(CALLBACK + "?")
    return await client.get(location_path(callback), follow_redirects=False), callback


async def signed_in(client: AsyncTestClient) -> bool:
    return (await client.get("/integrasjoner", follow_redirects=False)).status_code == 200


async def refused_with(client: AsyncTestClient, answer: httpx.Response, message: str) -> None:
    """Back on the login page with `message`, and no session: /integrasjoner sends to /login."""
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"].startswith("/login?sso=")
    page = await client.get(answer.headers["location"])
    assert page.status_code == 200
    assert message in page.text, page.text
    assert 'role="alert"' in page.text
    assert client.cookies.get("erp_session") in (None, "null")  # cleared
    follow_up = await client.get("/integrasjoner", follow_redirects=False)
    assert follow_up.status_code in (302, 303)
    assert follow_up.headers["location"] == "/login"


async def events(settings: Settings, kind: str) -> list[tuple[str, dict[str, object]]]:
    rows = await query(
        settings, f"select actor_label, details from audit_event where kind = '{kind}' order by id"
    )
    return [(label, json.loads(details) if details else {}) for label, details in rows]


# -- signing in ---------------------------------------------------------------------------


async def test_the_login_page_offers_the_provider(app: AsyncTestClient, office: int) -> None:
    page = (await app.get("/login")).text
    assert (
        f'<a class="button primary" href="/login/oidc/{office}">Logg inn med Testleverandør</a>'
        in page
    )


async def test_without_a_provider_there_is_no_button(app: AsyncTestClient) -> None:
    assert "Logg inn med" not in (await app.get("/login")).text


async def test_the_request_to_the_provider_carries_state_nonce_and_pkce(
    app: AsyncTestClient, office: int, provider: Provider
) -> None:
    start = await press_button(app, office)
    url = httpx.URL(start.headers["location"])
    assert str(url).startswith(provider.url + "/oauth2/authorize?")
    params = url.params
    assert params["response_type"] == "code"
    assert params["client_id"] == provider.client_id
    assert params["redirect_uri"] == CALLBACK
    assert set(params["scope"].split()) == {"openid", "email", "profile"}
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["state"]) >= 32 and len(params["nonce"]) >= 32


async def test_a_known_person_signs_in_by_verified_email_and_is_linked(
    app: AsyncTestClient,
    office: int,
    provider: Provider,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await add_user(settings, "kari@kontor-a.no", OFFICE)
    provider.set_user(
        "kari-sub", email="Kari@Kontor-A.no", email_verified=True, name="Kari Nordmann"
    )

    answer, callback = await sign_in(app, office, "kari-sub")

    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/integrasjoner"
    assert await signed_in(app)
    assert "kari@kontor-a.no" in (await app.get("/integrasjoner")).text
    [(subject,)] = await query(
        settings, "select oidc_subject from user_account where email = 'kari@kontor-a.no'"
    )
    assert subject and subject.endswith(":kari-sub")
    [(label, details)] = await events(settings, "signin")
    assert label == "kari@kontor-a.no"
    assert details["method"] == "oidc"
    code = httpx.URL(callback).params["code"]
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("erp"))
    assert "kari@kontor-a.no" in ours  # the app's own log lines (the test's client logs URLs)
    assert provider.client_secret not in caplog.text and code not in ours

    # Next time by the subject alone, whatever address the provider has for the person now.
    await app.post("/logout", data={"_csrf_token": csrf(app)})
    provider.set_user("kari-sub", email="kari.ny@example.com", email_verified=False)
    answer, _ = await sign_in(app, office, "kari-sub")
    assert answer.headers["location"] == "/integrasjoner"
    assert await signed_in(app)


async def test_the_session_id_changes_at_sign_in(
    app: AsyncTestClient, office: int, provider: Provider, settings: Settings
) -> None:
    await add_user(settings, "kari@kontor-a.no", OFFICE)
    provider.set_user("kari-sub", email="kari@kontor-a.no", email_verified=True)
    start = await press_button(app, office)
    before = app.cookies.get("erp_session")
    assert before  # the sign-in under way lives in this browser's session
    callback = await at_provider(start.headers["location"], "kari-sub")
    await app.get(location_path(callback), follow_redirects=False)
    assert app.cookies.get("erp_session") not in (None, before)


async def test_an_unverified_email_matches_nobody(
    app: AsyncTestClient, office: int, provider: Provider, settings: Settings
) -> None:
    await add_user(settings, "kari@kontor-a.no", OFFICE)
    provider.set_user("mallory", email="kari@kontor-a.no", email_verified=False)
    answer, _ = await sign_in(app, office, "mallory")
    await refused_with(app, answer, "ingen bekreftet e-postadresse")
    [(subject,)] = await query(
        settings, "select oidc_subject from user_account where email = 'kari@kontor-a.no'"
    )
    assert subject is None


async def test_a_pending_invitation_is_taken_at_first_sign_in(
    app: AsyncTestClient, office: int, provider: Provider, settings: Settings
) -> None:
    from services import invitations
    from services.audit import Actor
    from services.db import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    async with create_session_factory(engine)() as db:
        await invitations.invite(
            db, Actor(office, "admin@kontor-a.no"), "ola@kontor-a.no", "lesetilgang"
        )
    await engine.dispose()
    provider.set_user("ola-sub", email="ola@kontor-a.no", email_verified=True, name="Ola")

    answer, _ = await sign_in(app, office, "ola-sub")

    assert answer.headers["location"] == "/integrasjoner"
    rows = await query(
        settings,
        "select role, name, password_hash, oidc_subject from user_account "
        "where email = 'ola@kontor-a.no'",
    )
    [(role, name, password_hash, subject)] = rows
    assert (role, name, password_hash) == ("lesetilgang", "Ola", "")
    assert subject.endswith(":ola-sub")
    [(accepted,)] = await query(settings, "select accepted_at from invitation")
    assert accepted is not None


async def test_a_stranger_is_refused_unless_the_office_creates_people(
    app: AsyncTestClient, office: int, provider: Provider, settings: Settings
) -> None:
    provider.set_user("per-sub", email="per@kontor-a.no", email_verified=True, name="Per")
    answer, _ = await sign_in(app, office, "per-sub")
    await refused_with(app, answer, "Du har ingen bruker i dette kontoret")
    assert not await query(settings, "select id from user_account where email = 'per@kontor-a.no'")
    [(label, details)] = await events(settings, "signin.failed")
    assert label == "per@kontor-a.no (mislykket)"  # by nobody known, not as Per
    assert details["method"] == "oidc" and "ingen bruker" in str(details["reason"])


async def test_first_sign_in_creates_the_person_with_the_default_role(
    app: AsyncTestClient, office: int, provider: Provider, settings: Settings
) -> None:
    await execute(
        settings,
        "update signin_settings set oidc_create_users = true, oidc_default_role = 'regnskapsforer'",
    )
    provider.set_user("per-sub", email="per@kontor-a.no", email_verified=True, name="Per Hansen")

    answer, _ = await sign_in(app, office, "per-sub")

    assert answer.headers["location"] == "/integrasjoner"
    [(role, name, password_hash, office_id)] = await query(
        settings,
        "select role, name, password_hash, office_id from user_account "
        "where email = 'per@kontor-a.no'",
    )
    assert (role, name, password_hash, office_id) == ("regnskapsforer", "Per Hansen", "", office)
    [(label, details)] = await events(settings, "user.joined")
    assert label == "per@kontor-a.no" and details["role"] == "Regnskapsfører"


async def test_the_role_claim_maps_to_a_role_at_every_sign_in(
    app: AsyncTestClient, office: int, provider: Provider, settings: Settings
) -> None:
    mapping = json.dumps({"gid-admins": "administrator", "gid-regnskap": "regnskapsforer"})
    await execute(
        settings,
        "update signin_settings set oidc_create_users = true, oidc_role_claim = 'groups', "
        f"oidc_role_map = '{mapping}'",
    )
    provider.set_user(
        "per-sub", email="per@kontor-a.no", email_verified=True, groups=["gid-regnskap", "x"]
    )
    answer, _ = await sign_in(app, office, "per-sub")
    assert answer.headers["location"] == "/integrasjoner"
    role_of = "select role from user_account where email = 'per@kontor-a.no'"
    assert await query(settings, role_of) == [("regnskapsforer",)]

    await app.post("/logout", data={"_csrf_token": csrf(app)})
    provider.set_user(
        "per-sub",
        email="per@kontor-a.no",
        email_verified=True,
        groups=["gid-admins", "gid-regnskap"],
    )
    await sign_in(app, office, "per-sub")
    assert await query(settings, role_of) == [("administrator",)]
    assert (await app.get("/innstillinger/palogging")).status_code == 200
    [(_, details)] = await events(settings, "user.role")
    assert (details["before"], details["after"]) == ("Regnskapsfører", "Administrator")

    # Out of every mapped group: the default role.
    await app.post("/logout", data={"_csrf_token": csrf(app)})
    provider.set_user("per-sub", email="per@kontor-a.no", email_verified=True, groups=[])
    await sign_in(app, office, "per-sub")
    assert await query(settings, role_of) == [("lesetilgang",)]


async def test_a_deactivated_person_is_refused(
    app: AsyncTestClient, office: int, provider: Provider, settings: Settings
) -> None:
    await add_user(settings, "kari@kontor-a.no", OFFICE)
    await execute(
        settings, "update user_account set active = false where email = 'kari@kontor-a.no'"
    )
    provider.set_user("kari-sub", email="kari@kontor-a.no", email_verified=True)
    answer, _ = await sign_in(app, office, "kari-sub")
    await refused_with(app, answer, "Brukeren din er deaktivert")


async def test_a_person_of_another_office_is_refused(
    app: AsyncTestClient, office: int, provider: Provider, settings: Settings
) -> None:
    await add_user(settings, "bo@kontor-b.no", "Kontor B AS")
    provider.set_user("bo-sub", email="bo@kontor-b.no", email_verified=True)
    answer, _ = await sign_in(app, office, "bo-sub")
    await refused_with(app, answer, "Du har ingen bruker i dette kontoret")
    [(subject,)] = await query(
        settings, "select oidc_subject from user_account where email = 'bo@kontor-b.no'"
    )
    assert subject is None


# -- refusals -----------------------------------------------------------------------------


@pytest.fixture
async def kari(settings: Settings, provider: Provider, office: int) -> str:
    await add_user(settings, "kari@kontor-a.no", OFFICE)
    provider.set_user("kari-sub", email="kari@kontor-a.no", email_verified=True)
    return "kari-sub"


@pytest.mark.parametrize(
    ("claims", "message", "code"),
    [
        pytest.param(
            {"aud": "et-annet-program"},
            "utstedt til et annet program",
            "feil-mottaker",
            id="wrong-audience",
        ),
        pytest.param(
            {"exp": int(time.time()) - 3600},
            "ID-tokenet fra identitetsleverandøren er utløpt",
            "utlopt",
            id="expired",
        ),
        pytest.param(
            {"nonce": "en-annen-innlogging"},
            "hører ikke til denne innloggingen",
            "feil-nonce",
            id="nonce-mismatch",
        ),
        pytest.param(
            {"iss": "https://login.example.com"},
            "kommer fra en annen utsteder",
            "feil-utsteder",
            id="wrong-issuer",
        ),
    ],
)
async def test_a_token_the_provider_signed_but_not_for_us_is_refused(
    app: AsyncTestClient,
    office: int,
    provider: Provider,
    kari: str,
    settings: Settings,
    claims: dict[str, object],
    message: str,
    code: str,
) -> None:
    provider.set_user(kari, email="kari@kontor-a.no", email_verified=True, **claims)
    answer, _ = await sign_in(app, office, kari)
    await refused_with(app, answer, message)
    assert answer.headers["location"] == f"/login?sso={code}"
    [(_, details)] = await events(settings, "signin.failed")
    assert details["code"] == code
    assert not await events(settings, "signin")


async def test_a_tampered_id_token_is_refused(
    app: AsyncTestClient, office: int, provider: Provider, kari: str, settings: Settings
) -> None:
    provider.tamper.on = True
    provider.tamper.claims = {"email": "admin@kontor-a.no", "email_verified": True}
    answer, _ = await sign_in(app, office, kari)
    await refused_with(app, answer, "ID-tokenet har ikke en gyldig signatur")
    [(_, details)] = await events(settings, "signin.failed")
    assert details["code"] == "ugyldig-signatur"
    assert "admin@kontor-a.no" not in json.dumps(details)  # no token contents in the log


async def test_a_replayed_callback_is_refused(
    app: AsyncTestClient, office: int, provider: Provider, kari: str
) -> None:
    answer, callback = await sign_in(app, office, kari)
    assert answer.headers["location"] == "/integrasjoner"
    await app.post("/logout", data={"_csrf_token": csrf(app)})

    again = await app.get(location_path(callback), follow_redirects=False)

    await refused_with(app, again, "hører ikke til en innlogging som ble startet her")


async def test_a_callback_with_a_forged_state_is_refused(
    app: AsyncTestClient, office: int, provider: Provider, kari: str
) -> None:
    start = await press_button(app, office)
    callback = await at_provider(start.headers["location"], kari)
    forged = httpx.URL(callback).copy_set_param("state", "forfalsket")
    answer = await app.get(location_path(str(forged)), follow_redirects=False)
    await refused_with(app, answer, "hører ikke til en innlogging som ble startet her")
    # The real answer is no good afterwards either: the sign-in under way was single use.
    answer = await app.get(location_path(callback), follow_redirects=False)
    await refused_with(app, answer, "hører ikke til en innlogging som ble startet her")


async def test_another_browsers_callback_is_refused(
    app: AsyncTestClient, office: int, provider: Provider, kari: str, settings: Settings
) -> None:
    from app import create_app

    start = await press_button(app, office)
    callback = await at_provider(start.headers["location"], kari)
    async with AsyncTestClient(create_app(settings)) as victim:
        answer = await victim.get(location_path(callback), follow_redirects=False)
        await refused_with(victim, answer, "hører ikke til en innlogging som ble startet her")


async def test_cancelling_at_the_provider_signs_nobody_in(
    app: AsyncTestClient, office: int, provider: Provider, kari: str
) -> None:
    start = await press_button(app, office)
    async with httpx.AsyncClient(timeout=10) as browser:
        denied = await browser.post(start.headers["location"], data={"action": "deny"})
    answer = await app.get(location_path(denied.headers["location"]), follow_redirects=False)
    await refused_with(app, answer, "Innloggingen ble avbrutt")


async def test_a_provider_that_is_down_when_the_button_is_pressed(
    app: AsyncTestClient, settings: Settings, provider: Provider
) -> None:
    provider.url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    office = await configure(settings, OFFICE, provider)
    answer = await press_button(app, office)
    await refused_with(app, answer, "Fikk ikke kontakt med identitetsleverandøren")
    [(_, details)] = await events(settings, "signin.failed")
    assert details["code"] == "utilgjengelig"


async def test_a_provider_that_goes_down_before_the_answer_is_redeemed(
    app: AsyncTestClient, settings: Settings
) -> None:
    with running_provider() as provider:
        provider.register(CALLBACK)
        office = await configure(settings, OFFICE, provider)
        await add_user(settings, "kari@kontor-a.no", OFFICE)
        provider.set_user("kari-sub", email="kari@kontor-a.no", email_verified=True)
        start = await press_button(app, office)
        callback = await at_provider(start.headers["location"], "kari-sub")
    answer = await app.get(location_path(callback), follow_redirects=False)
    await refused_with(app, answer, "Fikk ikke kontakt med identitetsleverandøren")


async def test_a_wrong_client_secret_is_refused(
    app: AsyncTestClient, office: int, provider: Provider, kari: str, settings: Settings
) -> None:
    from services.crypto import KeyVault

    ciphertext = KeyVault(settings.encryption_keys).encrypt("feil-hemmelighet")
    await execute(
        settings, f"update signin_settings set oidc_client_secret_ciphertext = '{ciphertext}'"
    )
    answer, _ = await sign_in(app, office, kari)
    await refused_with(app, answer, "Identitetsleverandøren godtok ikke innloggingen")


# -- requests to the provider -------------------------------------------------------------


def count_requests(provider: Provider) -> Counter[str]:
    """How many requests reach the provider, by path, from now on."""
    seen: Counter[str] = Counter()
    inner = provider.tamper.app

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        seen[environ.get("PATH_INFO", "")] += 1
        return inner(environ, start_response)

    provider.tamper.app = counting
    return seen


async def test_the_button_does_not_fetch_the_providers_documents_each_time(
    app: AsyncTestClient, office: int, provider: Provider, kari: str
) -> None:
    """The button is public: the discovery document and the keys are kept a while, not
    fetched for every press or sign-in."""
    seen = count_requests(provider)
    for _ in range(5):
        assert (await press_button(app, office)).status_code == 303
    assert seen["/.well-known/openid-configuration"] == 1
    for _ in range(2):
        answer, _ = await sign_in(app, office, kari)
        assert answer.headers["location"] == "/integrasjoner"
        await app.post("/logout", data={"_csrf_token": csrf(app)})
    assert seen["/.well-known/openid-configuration"] == 1
    assert seen["/jwks"] == 1
    assert seen["/oauth2/token"] == 2


async def test_keys_the_provider_rolled_meanwhile_are_fetched_again(
    app: AsyncTestClient, office: int, provider: Provider, kari: str
) -> None:
    from joserfc.jwk import KeySet

    from services import oidc

    await sign_in(app, office, kari)
    await app.post("/logout", data={"_csrf_token": csrf(app)})
    # The keys kept are not the ones the provider signs with now.
    for where, (until, _) in list(oidc._key_sets.items()):
        oidc._key_sets[where] = (until, KeySet.generate_key_set("RSA", 2048, count=1))
    seen = count_requests(provider)
    answer, _ = await sign_in(app, office, kari)
    assert answer.headers["location"] == "/integrasjoner"
    assert seen["/jwks"] == 1


# -- local passwords ----------------------------------------------------------------------


async def test_requiring_sso_refuses_the_offices_passwords(
    app: AsyncTestClient, office: int, settings: Settings
) -> None:
    await add_user(settings, "bo@kontor-b.no", "Kontor B AS")
    await execute(settings, "update signin_settings set sso_required = true")
    await app.get("/login")

    refused = await app.post(
        "/login",
        data={"email": "admin@kontor-a.no", "password": PASSWORD, "_csrf_token": csrf(app)},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    assert "Kontoret ditt logger inn med Testleverandør, ikke med passord" in refused.text
    assert "Logg inn med Testleverandør" in refused.text  # the button is right there
    assert not await signed_in(app)

    # A wrong password gets the same answer: it does not tell which password is right.
    wrong = await app.post(
        "/login",
        data={
            "email": "admin@kontor-a.no",
            "password": "feil-passord-123",
            "_csrf_token": csrf(app),
        },
    )
    assert (wrong.status_code, wrong.text) == (refused.status_code, refused.text)

    other = await app.post(
        "/login",
        data={"email": "bo@kontor-b.no", "password": PASSWORD, "_csrf_token": csrf(app)},
        follow_redirects=False,
    )
    assert other.status_code == 303  # another office keeps its passwords


async def test_requiring_sso_checks_no_password_but_takes_as_long(
    app: AsyncTestClient, office: int, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The office's rule is looked up before the password: argon2 still runs once (the
    answer takes as long), but against no stored hash, right or wrong alike."""
    from services import auth

    checked: list[str] = []
    real = auth._check_password

    def counted(password: str, password_hash: str) -> bool:
        checked.append(password_hash)
        return real(password, password_hash)

    monkeypatch.setattr(auth, "_check_password", counted)
    await execute(settings, "update signin_settings set sso_required = true")
    [(stored,)] = await query(
        settings, "select password_hash from user_account where email = 'admin@kontor-a.no'"
    )
    await app.get("/login")
    for password in (PASSWORD, "feil-passord-123"):
        answer = await app.post(
            "/login",
            data={"email": "admin@kontor-a.no", "password": password, "_csrf_token": csrf(app)},
        )
        assert answer.status_code == 403
    assert len(checked) == 2 and stored not in checked


async def test_requiring_sso_without_a_working_provider_leaves_passwords_on(
    app: AsyncTestClient, office: int, settings: Settings
) -> None:
    """Switched off (or never complete), the provider cannot sign anyone in: the rule is
    not in force, or the office would be locked out, its administrators too."""
    await execute(settings, "update signin_settings set sso_required = true, oidc_enabled = false")
    await app.get("/login")
    answer = await app.post(
        "/login",
        data={"email": "admin@kontor-a.no", "password": PASSWORD, "_csrf_token": csrf(app)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert await signed_in(app)


async def test_requiring_sso_with_the_operators_provider_refuses_passwords(
    settings: Settings, provider: Provider
) -> None:
    import dataclasses

    from app import create_app

    await add_user(settings, "admin@kontor-a.no", OFFICE)
    await execute(
        settings,
        "insert into signin_settings (office_id, oidc_enabled, oidc_display_name, oidc_issuer, "
        "oidc_client_id, oidc_create_users, oidc_default_role, oidc_role_claim, oidc_role_map, "
        "sso_required, totp_required, audit_retention_years, updated_at) select id, false, '', "
        "'', '', false, 'lesetilgang', '', '', true, false, 5, created_at from office",
    )
    operated = dataclasses.replace(
        settings,
        oidc=OidcConfig(
            issuer=provider.url,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            display_name="Microsoft",
        ),
    )
    async with AsyncTestClient(create_app(operated)) as client:
        await client.get("/login")
        answer = await client.post(
            "/login",
            data={"email": "admin@kontor-a.no", "password": PASSWORD, "_csrf_token": csrf(client)},
        )
        assert answer.status_code == 403
        assert "Kontoret ditt logger inn med Microsoft, ikke med passord" in answer.text


# -- the operator's settings --------------------------------------------------------------


async def test_the_operators_provider_serves_the_only_office(
    settings: Settings, provider: Provider
) -> None:
    import dataclasses

    from app import create_app

    await add_user(settings, "kari@kontor-a.no", OFFICE)
    provider.set_user("kari-sub", email="kari@kontor-a.no", email_verified=True)
    operated = dataclasses.replace(
        settings,
        oidc=OidcConfig(
            issuer=provider.url,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            display_name="Microsoft",
        ),
    )
    async with AsyncTestClient(create_app(operated)) as client:
        page = (await client.get("/login")).text
        assert "Logg inn med Microsoft" in page
        [(office,)] = await query(settings, "select id from office")
        answer, _ = await sign_in(client, office, "kari-sub")
        assert answer.headers["location"] == "/integrasjoner"
        assert await signed_in(client)


# -- over real HTTP end to end ------------------------------------------------------------


async def test_sign_in_with_the_app_served_over_http(settings: Settings) -> None:
    """The app under uvicorn on its own port, a browser-like client following every
    redirect between it and the provider."""
    import dataclasses

    from app import create_app

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_provider() as provider:
        provider.register(f"{base}/login/oidc/callback")
        office = await configure(settings, OFFICE, provider)
        await add_user(settings, "kari@kontor-a.no", OFFICE)
        provider.set_user("kari-sub", email="kari@kontor-a.no", email_verified=True)
        app = create_app(dataclasses.replace(settings, public_base_url=base))
        async with (
            served_here(app, port),
            httpx.AsyncClient(base_url=base, timeout=30, follow_redirects=True) as browser,
        ):
            page = await browser.get("/login")
            assert "Logg inn med Testleverandør" in page.text
            at_provider = await browser.get(f"/login/oidc/{office}")
            assert at_provider.url.host == "127.0.0.1" and at_provider.url.port != port
            assert "Authorize" in at_provider.text
            home = await browser.post(str(at_provider.url), data={"sub": "kari-sub"})
            assert home.url == f"{base}/integrasjoner"
            assert "kari@kontor-a.no" in home.text


# -- the operator's variables -------------------------------------------------------------


@pytest.mark.database_agnostic
@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"OIDC_CLIENT_ID": "x"}, "OIDC_CLIENT_ID is set but OIDC_ISSUER is not", id="no-issuer"
        ),
        pytest.param(
            {"OIDC_ISSUER": "https://idp.example.com"},
            "needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET",
            id="no-client",
        ),
        pytest.param(
            {
                "OIDC_ISSUER": "http://idp.example.com",
                "OIDC_CLIENT_ID": "x",
                "OIDC_CLIENT_SECRET": "y",
            },
            "OIDC_ISSUER must be an https:// URL",
            id="plain-http",
        ),
    ],
)
def test_the_operators_variables_are_checked_at_start(env: dict[str, str], message: str) -> None:
    from services.settings import SettingsError

    with pytest.raises(SettingsError, match=message):
        OidcConfig.from_env(env, allow_http=False)


@pytest.mark.database_agnostic
def test_the_operators_secret_is_never_shown() -> None:
    config = OidcConfig.from_env(
        {
            "OIDC_ISSUER": "https://login.microsoftonline.com/t/v2.0",
            "OIDC_CLIENT_ID": "app",
            "OIDC_CLIENT_SECRET": "s3cr3t-verdi",
            "OIDC_OFFICE": "Kontor A AS",
        },
        allow_http=False,
    )
    assert config.configured and config.office == "Kontor A AS"
    assert config.display_name == "identitetsleverandøren"
    assert "s3cr3t-verdi" not in repr(config)
