"""Tofaktor (issue 20): set up under Min konto with a code, asked for after the password,
recovery codes that work once, throttled like passwords, required by the office, and every
sign-in, failure and sign-out in the audit log."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import timedelta

import pyotp
import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import PASSWORD, csrf, execute, login, query

pytestmark = pytest.mark.anyio

EMAIL = "regnskap@kontor-a.no"


async def post(client: AsyncTestClient, path: str, **data: str):  # type: ignore[no-untyped-def]
    return await client.post(
        path, data={**data, "_csrf_token": csrf(client)}, follow_redirects=False
    )


def secret_on(page: str) -> str:
    found = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert found, page
    return found.group(1).replace(" ", "")


def codes_on(page: str) -> list[str]:
    listed = re.search(r'<ol class="recovery-codes[^"]*">(.*?)</ol>', page, re.S)
    assert listed, page
    return re.findall(r"<li>([a-z0-9-]+)</li>", listed.group(1))


def earlier_code(secret: str) -> str:
    """The code of the step before now: valid, and leaves now's code unused."""
    return pyotp.TOTP(secret).at(time.time() - 30)


def wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    valid = {totp.at(time.time() + offset) for offset in (-30, 0, 30)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)


async def enable(client: AsyncTestClient) -> tuple[str, list[str]]:
    """Tofaktor switched on under Min konto (confirmed with the previous step's code)."""
    started = await post(client, "/konto/tofaktor")
    assert started.status_code == 200, started.text
    secret = secret_on(started.text)
    confirmed = await post(client, "/konto/tofaktor/oppsett", code=earlier_code(secret))
    assert confirmed.status_code == 200, confirmed.text
    return secret, codes_on(confirmed.text)


async def signed_in(client: AsyncTestClient) -> bool:
    return (await client.get("/integrasjoner", follow_redirects=False)).status_code == 200


async def password_step(client: AsyncTestClient, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    await client.get("/login")
    return await post(client, "/login", email=EMAIL, password=password)


async def audit_rows(settings: Settings, kind: str) -> list[dict]:
    rows = await query(
        settings,
        f"select actor_label, details, address from audit_event where kind = '{kind}' order by id",
    )
    return [
        {"actor": actor, **(json.loads(details) if details else {}), "address": address}
        for actor, details, address in rows
    ]


async def test_enabling_takes_a_right_code_and_shows_ten_recovery_codes_once(
    client: AsyncTestClient, settings: Settings
) -> None:
    page = (await client.get("/konto")).text
    assert "Endre passord" in page and "Tofaktor" in page
    assert "Slå på tofaktor" in page

    started = await post(client, "/konto/tofaktor")
    secret = secret_on(started.text)
    assert len(secret) == 32
    grouped = " ".join(secret[i : i + 4] for i in range(0, 32, 4))
    assert grouped in started.text  # in groups of four, to type by hand
    assert f"otpauth://totp/ERP-integrasjon:regnskap%40kontor-a.no?secret={secret}" in started.text

    wrong = await post(client, "/konto/tofaktor/oppsett", code=wrong_code(secret))
    assert wrong.status_code == 422
    assert "Feil kode." in wrong.text
    assert secret_on(wrong.text) == secret  # the same secret, to try again
    assert await query(settings, "select totp_enabled_at from user_account") == [(None,)]

    right = await post(client, "/konto/tofaktor/oppsett", code=pyotp.TOTP(secret).now())
    assert right.status_code == 200
    assert "Tofaktor er slått på." in right.text
    codes = codes_on(right.text)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert secret not in right.text

    stored = await query(settings, "select code_hash from recovery_code")
    assert len(stored) == 10
    assert not {code for code in codes} & {row[0] for row in stored}  # hashes only
    page = (await client.get("/konto")).text
    assert "Tofaktor er på" in page and "10 av 10" in page
    assert "Slå på tofaktor" not in page
    for code in codes:
        assert code not in page


async def test_sign_in_asks_for_the_code_after_the_password(
    client: AsyncTestClient, settings: Settings
) -> None:
    secret, _ = await enable(client)
    await post(client, "/logout")

    answer = await password_step(client)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login/tofaktor"
    pending = client.cookies.get("erp_session")
    # The password alone signs no one in: no page, no user in the stored session.
    assert not await signed_in(client)
    assert (await client.get("/konto", follow_redirects=False)).headers["location"] == "/login"
    assert await query(settings, "select user_id from web_session") == [(None,)]
    code_page = await client.get("/login/tofaktor")
    assert code_page.status_code == 200
    assert 'autocomplete="one-time-code"' in code_page.text

    done = await post(client, "/login/tofaktor", code=pyotp.TOTP(secret).now())
    assert done.status_code == 303
    assert done.headers["location"] == "/integrasjoner"
    assert client.cookies.get("erp_session") != pending  # a fresh id for the signed-in session
    assert await signed_in(client)
    assert (await query(settings, "select last_login_at from user_account"))[0][0] is not None


async def test_the_code_step_ends_after_five_minutes(
    client: AsyncTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services import signin

    secret, _ = await enable(client)
    await post(client, "/logout")
    await password_step(client)
    monkeypatch.setattr(signin, "CODE_FOR", timedelta(0))
    late = await post(client, "/login/tofaktor", code=pyotp.TOTP(secret).now())
    assert late.status_code == 422
    assert "Påloggingen tok for lang tid. Logg inn på nytt." in late.text
    assert (await client.get("/login/tofaktor", follow_redirects=False)).status_code == 302
    assert not await signed_in(client)


async def test_wrong_codes_are_throttled_as_passwords_are(
    client: AsyncTestClient, settings: Settings
) -> None:
    secret, _ = await enable(client)
    await post(client, "/logout")
    await password_step(client)
    for _ in range(4):
        wrong = await post(client, "/login/tofaktor", code=wrong_code(secret))
        assert wrong.status_code == 422
        assert "Feil kode." in wrong.text
    # A right password again does not wipe the count of wrong codes.
    assert (await password_step(client)).headers["location"] == "/login/tofaktor"
    locked = await post(client, "/login/tofaktor", code=wrong_code(secret))
    assert locked.status_code == 429
    assert "For mange mislykkede forsøk. Prøv igjen om 1 minutt." in locked.text
    refused = await post(client, "/login/tofaktor", code=pyotp.TOTP(secret).now())
    assert refused.status_code == 429  # not even the right one is checked now
    assert not await signed_in(client)
    reasons = [row["reason"] for row in await audit_rows(settings, "signin.failed")]
    # The code that brought the lock is recorded; the one refused unchecked after it is not.
    assert reasons == ["feil kode"] * 4 + ["feil kode, nå låst for nye forsøk"]


async def test_a_recovery_code_signs_in_once(client: AsyncTestClient, settings: Settings) -> None:
    _, codes = await enable(client)
    await post(client, "/logout")

    await password_step(client)
    typed = codes[3].upper().replace("-", " ")  # as read aloud off paper
    assert (await post(client, "/login/tofaktor", code=typed)).status_code == 303
    assert await signed_in(client)
    assert "9 av 10" in (await client.get("/konto")).text
    await post(client, "/logout")

    await password_step(client)
    again = await post(client, "/login/tofaktor", code=codes[3])
    assert again.status_code == 422
    assert not await signed_in(client)
    signins = await audit_rows(settings, "signin")
    assert signins[-1]["second_factor"] == "gjenopprettingskode"


async def test_a_used_code_is_refused_within_its_window(
    client: AsyncTestClient, settings: Settings
) -> None:
    secret, _ = await enable(client)
    await post(client, "/logout")
    code = pyotp.TOTP(secret).now()
    await password_step(client)
    assert (await post(client, "/login/tofaktor", code=code)).status_code == 303
    await post(client, "/logout")

    # Seen over a shoulder: the same code, within its 30 seconds, a second time.
    await password_step(client)
    reused = await post(client, "/login/tofaktor", code=code)
    assert reused.status_code == 422
    assert not await signed_in(client)
    # And the code confirmed at setup is spent too.
    assert (await post(client, "/login/tofaktor", code=earlier_code(secret))).status_code == 422


async def test_an_office_that_requires_it_makes_the_person_set_it_up_first(
    client: AsyncTestClient, settings: Settings
) -> None:
    office_id = (await query(settings, "select office_id from user_account"))[0][0]
    await execute(
        settings,
        "insert into signin_settings (office_id, oidc_enabled, oidc_display_name, oidc_issuer,"
        " oidc_client_id, oidc_create_users, oidc_default_role, oidc_role_claim, oidc_role_map,"
        " sso_required, totp_required, audit_retention_years, updated_at) values"
        f" ({office_id}, false, '', '', '', false, 'lesetilgang', '', '', false, true, 5,"
        " current_timestamp)",
    )
    await post(client, "/logout")
    answer = await password_step(client)
    assert answer.headers["location"] == "/login/tofaktor/oppsett"
    assert not await signed_in(client)  # nothing else before it is set up

    page = await client.get("/login/tofaktor/oppsett")
    assert "Kontoret krever tofaktor." in page.text
    secret = secret_on(page.text)
    assert secret_on((await client.get("/login/tofaktor/oppsett")).text) == secret  # reload
    wrong = await post(client, "/login/tofaktor/oppsett", code=wrong_code(secret))
    assert wrong.status_code == 422
    assert not await signed_in(client)

    done = await post(client, "/login/tofaktor/oppsett", code=pyotp.TOTP(secret).now())
    assert done.status_code == 200
    assert len(codes_on(done.text)) == 10
    assert 'href="/integrasjoner"' in done.text  # then on
    assert await signed_in(client)
    assert [row["second_factor"] for row in await audit_rows(settings, "signin")][-1] == "app"

    # From now on, the code step.
    await post(client, "/logout")
    assert (await password_step(client)).headers["location"] == "/login/tofaktor"


async def test_set_up_meanwhile_in_another_browser_the_setup_step_becomes_the_code_step(
    client: AsyncTestClient, settings: Settings
) -> None:
    """Two browsers at the office's forced setup at once: once one has set it up, the
    other is asked for a code (reloading the setup page, or posting to it), not a 500."""
    from app import create_app

    await execute(
        settings,
        "insert into signin_settings (office_id, oidc_enabled, oidc_display_name, oidc_issuer,"
        " oidc_client_id, oidc_create_users, oidc_default_role, oidc_role_claim, oidc_role_map,"
        " sso_required, totp_required, audit_retention_years, updated_at) select id, false, '',"
        " '', '', false, 'lesetilgang', '', '', false, true, 5, created_at from office",
    )
    await post(client, "/logout")
    assert (await password_step(client)).headers["location"] == "/login/tofaktor/oppsett"
    secret = secret_on((await client.get("/login/tofaktor/oppsett")).text)
    async with (
        AsyncTestClient(create_app(settings)) as laptop,
        AsyncTestClient(create_app(settings)) as phone,
    ):
        for other in (laptop, phone):
            assert (await password_step(other)).headers["location"] == "/login/tofaktor/oppsett"
            assert secret_on((await other.get("/login/tofaktor/oppsett")).text) == secret
        done = await post(client, "/login/tofaktor/oppsett", code=earlier_code(secret))
        assert done.status_code == 200 and await signed_in(client)

        reloaded = await laptop.get("/login/tofaktor/oppsett", follow_redirects=False)
        assert (reloaded.status_code, reloaded.headers["location"]) == (303, "/login/tofaktor")
        posted = await post(phone, "/login/tofaktor/oppsett", code=pyotp.TOTP(secret).now())
        assert (posted.status_code, posted.headers["location"]) == (303, "/login/tofaktor")
        assert not await signed_in(laptop) and not await signed_in(phone)
        code = await post(laptop, "/login/tofaktor", code=pyotp.TOTP(secret).now())
        assert code.status_code == 303 and await signed_in(laptop)
        assert "sekssifrede koden" in (await phone.get("/login/tofaktor")).text


async def test_switching_off_takes_a_code_or_the_password(
    client: AsyncTestClient, settings: Settings
) -> None:
    secret, _ = await enable(client)
    wrong = await post(client, "/konto/tofaktor/av", proof="ikke-passordet-mitt")
    assert wrong.status_code == 422
    assert "Feil kode eller passord." in wrong.text
    wrong = await post(client, "/konto/tofaktor/av", proof=wrong_code(secret))
    assert wrong.status_code == 422
    assert (await query(settings, "select count(*) from recovery_code")) == [(10,)]

    off = await post(client, "/konto/tofaktor/av", proof=pyotp.TOTP(secret).now())
    assert off.status_code == 200
    assert "Tofaktor er slått av." in off.text
    assert "Slå på tofaktor" in off.text
    assert await query(
        settings, "select totp_secret_ciphertext, totp_enabled_at from user_account"
    ) == [(None, None)]
    assert (await query(settings, "select count(*) from recovery_code")) == [(0,)]
    await post(client, "/logout")
    await login(client, EMAIL)  # the password alone again

    await enable(client)
    off = await post(client, "/konto/tofaktor/av", proof=PASSWORD)
    assert off.status_code == 200 and "Tofaktor er slått av." in off.text


async def test_new_recovery_codes_replace_the_old(
    client: AsyncTestClient, settings: Settings
) -> None:
    _, old = await enable(client)
    answer = await post(client, "/konto/tofaktor/koder")
    assert answer.status_code == 200
    new = codes_on(answer.text)
    assert len(new) == 10 and not set(new) & set(old)
    await post(client, "/logout")
    await password_step(client)
    assert (await post(client, "/login/tofaktor", code=old[0])).status_code == 422
    assert (await post(client, "/login/tofaktor", code=new[0])).status_code == 303


async def test_the_secret_is_never_shown_or_logged_after_setup(
    client: AsyncTestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret, codes = await enable(client)
    for path in ("/konto", "/integrasjoner", "/konto/passord"):
        page = (await client.get(path)).text
        assert secret not in page and secret[:8] not in page
    again = await post(client, "/konto/tofaktor")  # on already: no new secret is shown
    assert again.status_code == 303
    await post(client, "/logout")
    await password_step(client)
    assert secret not in (await client.get("/login/tofaktor")).text
    await post(client, "/login/tofaktor", code=pyotp.TOTP(secret).now())

    assert secret not in caplog.text and secret[:8] not in caplog.text
    assert not any(code in caplog.text for code in codes)
    for row in await query(settings, "select * from user_account"):
        assert not any(secret in str(value) for value in row)
    for row in await query(settings, "select details, target_label from audit_event"):
        assert secret not in str(row)


async def test_sign_ins_failures_sign_outs_and_changes_are_in_the_audit_log(
    client: AsyncTestClient, settings: Settings
) -> None:
    # The client fixture signed in once with the password alone.
    first = (await audit_rows(settings, "signin"))[0]
    assert first["actor"] == EMAIL and first["method"] == "passord"
    assert first["second_factor"] == "nei"
    assert first["address"]

    secret, _ = await enable(client)
    await post(client, "/konto/tofaktor/koder")
    await post(client, "/logout")
    assert (await password_step(client, "feil-passord-her")).status_code == 422
    await client.get("/login")
    await post(client, "/login", email="ukjent@kontor-a.no", password=PASSWORD)
    await password_step(client)
    await post(client, "/login/tofaktor", code=wrong_code(secret))
    await post(client, "/login/tofaktor", code=pyotp.TOTP(secret).now())
    await post(client, "/konto/tofaktor/av", proof=PASSWORD)

    assert [r["reason"] for r in await audit_rows(settings, "signin.failed")] == [
        "feil passord",  # the unknown e-mail has no office to be logged in: none
        "feil kode",
    ]
    signins = await audit_rows(settings, "signin")
    assert [r["second_factor"] for r in signins] == ["nei", "app"]
    signouts = await audit_rows(settings, "signout")
    assert [r["actor"] for r in signouts] == [EMAIL]
    changes = await audit_rows(settings, "user.totp")
    assert [{k: v for k, v in r.items() if k not in ("actor", "address")} for r in changes] == [
        {"enabled": {"before": False, "after": True}},
        {"recovery_codes": "endret"},
        {"enabled": {"before": True, "after": False}},
    ]


async def test_a_person_without_a_local_password_sees_no_second_factor(
    client: AsyncTestClient, settings: Settings
) -> None:
    await execute(settings, "update user_account set password_hash = ''")
    page = (await client.get("/konto")).text
    assert "Tofaktor" not in page and "Endre passord" not in page
    assert (await post(client, "/konto/tofaktor")).status_code == 303
