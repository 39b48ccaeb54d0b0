"""Innstillinger → Brukere: inviting a colleague (a single-use link, valid 72 hours, shown
once and e-mailed through a real SMTP server), taking the link, changing roles, and
deactivating; each recorded in the audit log. Also `create-user --role`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from aiosmtpd.controller import Controller
from litestar.testing import AsyncTestClient
from sqlmodel import select

from models import User
from models.base import utcnow
from models.office import Invitation, Role
from services import users
from services.audit import Actor
from services.auth import create_user
from services.db import create_engine, create_session_factory, open_session
from services.logging_setup import redact
from services.settings import Settings
from tests.conftest import PASSWORD, csrf, execute, free_port, htmx, login, query
from tests.test_email_alerts import Inbox, smtp_config

pytestmark = pytest.mark.anyio

ADMIN = "regnskap@kontor-a.no"  # the `client` fixture's person: an administrator
NEW = "kari@kontor-a.no"
NEW_PASSWORD = "Kari sitt lange passord 2026"
PAGE = "/innstillinger/brukere"
BASE_URL = "https://erp.kontoret.no"
ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r'value="(https?://[^"]+/invitasjon/([A-Za-z0-9_\-]+))"')


async def invite(client: AsyncTestClient, email: str = NEW, role: str = "regnskapsforer"):  # type: ignore[no-untyped-def]
    return await client.post(PAGE, data={"email": email, "role": role, "_csrf_token": csrf(client)})


async def invited_link(
    client: AsyncTestClient, email: str = NEW, role: str = "regnskapsforer"
) -> str:
    response = await invite(client, email, role)
    assert response.status_code == 200, response.text
    found = LINK.search(response.text)
    assert found, "the new link is on the page"
    return found.group(1)


def path_of(link: str) -> str:
    return "/invitasjon/" + link.rsplit("/invitasjon/", 1)[1]


async def take(
    client: AsyncTestClient,
    link: str,
    name: str = "Kari Nordmann",
    password: str = NEW_PASSWORD,
    repeat: str | None = None,
):  # type: ignore[no-untyped-def]
    await client.get(path_of(link))
    return await client.post(
        path_of(link),
        data={
            "name": name,
            "password": password,
            "repeat": password if repeat is None else repeat,
            "_csrf_token": csrf(client),
        },
        follow_redirects=False,
    )


@asynccontextmanager
async def stranger(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """Another browser: nobody signed in."""
    from app import create_app

    async with AsyncTestClient(create_app(settings)) as other:
        yield other


async def add_person(settings: Settings, email: str, role: str) -> None:
    from models.office import Role

    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        await create_user(
            db, email=email, password=PASSWORD, office_name="Kontor A AS", role=Role(role)
        )
    await engine.dispose()


async def audit_rows(settings: Settings) -> list[tuple]:
    return await query(
        settings,
        "select kind, actor_label, target_label, details from audit_event order by id",
    )


async def move_expiry(settings: Settings, to: timedelta) -> timedelta:
    """Moves the invitation's expiry to `to` from now; returns how long it was valid for."""
    engine = create_engine(settings.database_url)
    try:
        async with open_session(create_session_factory(engine)) as db:
            invitation = (await db.exec(select(Invitation))).one()
            valid_for = invitation.expires_at - invitation.created_at
            invitation.expires_at = utcnow() + to
            await db.commit()
    finally:
        await engine.dispose()
    return valid_for


# -- the list ----------------------------------------------------------------------------


async def test_the_list_shows_each_persons_role_status_signin_and_last_login(
    client: AsyncTestClient, settings: Settings
) -> None:
    await add_person(settings, "les@kontor-a.no", "lesetilgang")
    await execute(
        settings, "update user_account set active = false where email = 'les@kontor-a.no'"
    )
    page = (await client.get(PAGE)).text
    assert 'aria-current="page">Brukere</a>' in page
    mine = page[page.index('id="person-') :]
    assert ADMIN in mine and "Administrator" in mine and "(deg)" in mine
    row = page[page.index("les@kontor-a.no") :]
    row = row[: row.index("</tr>")]
    assert "Lesetilgang" in row and "Deaktivert" in row and "Passord" in row
    assert ">Av<" in row and "aldri" in row and ">Aktiver<" in row


async def test_only_administrators_reach_the_page(
    client: AsyncTestClient, settings: Settings
) -> None:
    await add_person(settings, "fører@kontor-a.no", "regnskapsforer")
    async with stranger(settings) as other:
        await login(other, "fører@kontor-a.no")
        assert (await other.get(PAGE)).status_code == 403
        refused = await other.post(
            PAGE, data={"email": NEW, "role": "administrator", "_csrf_token": csrf(other)}
        )
        assert refused.status_code == 403
    assert await query(settings, "select email from invitation") == []


# -- inviting and taking the link --------------------------------------------------------


async def test_an_invitation_link_works_once_and_signs_the_person_in(
    client: AsyncTestClient, settings: Settings
) -> None:
    response = await invite(client)
    assert response.headers["cache-control"] == "no-store"
    link = LINK.search(response.text).group(1)  # type: ignore[union-attr]
    token = link.rsplit("/", 1)[1]
    assert len(token) >= 43
    assert "Kopier lenken" in response.text and "den vises bare denne ene gangen" in response.text
    # Only the token's hash is kept; the page never shows the link again.
    ((stored,),) = await query(settings, "select token_hash from invitation")
    assert stored == hashlib.sha256(token.encode()).hexdigest()
    page = (await client.get(PAGE)).text
    assert token not in page
    assert "Invitert – venter" in page and NEW in page and "Trekk tilbake" in page

    async with stranger(settings) as kari:
        shown = await kari.get(path_of(link))
        assert shown.status_code == 200
        assert "Kontor A AS" in shown.text and "Regnskapsfører" in shown.text and NEW in shown.text
        joined = await take(kari, link)
        assert joined.status_code == 303 and joined.headers["location"] == "/integrasjoner"
        home = await kari.get("/integrasjoner", follow_redirects=False)
        assert home.status_code == 200 and NEW in home.text
        assert 'href="/innstillinger"' not in home.text  # a Regnskapsfører, not an administrator

    async with stranger(settings) as again:
        second = await take(again, link, password="Et helt annet passord 99")
        assert second.status_code == 410
        assert "allerede tatt i bruk" in second.text
    assert await query(
        settings, f"select name, role, active from user_account where email = '{NEW}'"
    ) == [("Kari Nordmann", "regnskapsforer", True)]
    await login(client, NEW, NEW_PASSWORD)

    events = await audit_rows(settings)
    kinds = [(kind, actor, target) for kind, actor, target, _ in events]
    assert ("user.invited", ADMIN, NEW) in kinds and ("user.joined", NEW, NEW) in kinds
    assert not any(token in (details or "") for *_, details in events)


async def test_the_link_is_refused_after_72_hours(
    client: AsyncTestClient, settings: Settings
) -> None:
    link = await invited_link(client)
    assert await move_expiry(settings, -timedelta(seconds=1)) == timedelta(hours=72)
    async with stranger(settings) as kari:
        shown = await kari.get(path_of(link))
        assert (
            shown.status_code == 410 and "utløpt" in shown.text and "Velg passord" not in shown.text
        )
        assert (await take(kari, link)).status_code == 410
    assert await query(settings, f"select id from user_account where email = '{NEW}'") == []
    assert "Invitasjonen er utløpt" in (await client.get(PAGE)).text


async def test_a_revoked_link_no_longer_works(client: AsyncTestClient, settings: Settings) -> None:
    link = await invited_link(client)
    ((invitation_id,),) = await query(settings, "select id from invitation")
    revoked = await client.post(
        f"{PAGE}/invitasjoner/{invitation_id}/trekk-tilbake", headers=htmx(client)
    )
    assert revoked.status_code == 200
    assert f"Invitasjonen til {NEW} er trukket tilbake" in revoked.text
    assert "Invitert – venter" not in revoked.text
    async with stranger(settings) as kari:
        shown = await kari.get(path_of(link))
        assert shown.status_code == 410 and "trukket tilbake" in shown.text
        assert (await take(kari, link)).status_code == 410
    assert await query(settings, f"select id from user_account where email = '{NEW}'") == []
    assert ("user.invitation_revoked", ADMIN, NEW) in [r[:3] for r in await audit_rows(settings)]


async def test_an_unknown_link_is_a_404(client: AsyncTestClient, settings: Settings) -> None:
    async with stranger(settings) as kari:
        shown = await kari.get("/invitasjon/ikke-en-ekte-lenke")
        assert shown.status_code == 404 and "Lenken finnes ikke" in shown.text
        assert (await take(kari, "x/invitasjon/ikke-en-ekte-lenke")).status_code == 404
    assert len(await query(settings, "select id from user_account")) == 1


async def test_inviting_again_replaces_the_earlier_link(
    client: AsyncTestClient, settings: Settings
) -> None:
    first = await invited_link(client)
    second = await invited_link(client, role="lesetilgang")
    assert first != second
    async with stranger(settings) as kari:
        assert (await kari.get(path_of(first))).status_code == 410
        assert (await take(kari, second)).status_code == 303
    assert await query(settings, f"select role from user_account where email = '{NEW}'") == [
        ("lesetilgang",)
    ]


async def test_inviting_a_person_who_has_a_user_is_refused(
    client: AsyncTestClient, settings: Settings
) -> None:
    response = await client.post(
        PAGE, data={"email": ADMIN.upper(), "role": "lesetilgang"}, headers=htmx(client)
    )
    assert response.status_code == 422
    assert f"{ADMIN} har allerede en bruker og kan ikke inviteres." in response.text
    assert await query(settings, "select id from invitation") == []
    bad = await client.post(
        PAGE, data={"email": "ikke-en-adresse", "role": "lesetilgang"}, headers=htmx(client)
    )
    assert bad.status_code == 422 and "ikke en gyldig e-postadresse" in bad.text


async def test_the_password_policy_holds_when_taking_the_link(
    client: AsyncTestClient, settings: Settings
) -> None:
    link = await invited_link(client)
    async with stranger(settings) as kari:
        short = await take(kari, link, password="kort")
        assert short.status_code == 422 and "Passordet må ha minst 12 tegn." in short.text
        unlike = await take(kari, link, repeat=NEW_PASSWORD + "x")
        assert unlike.status_code == 422 and "Passordene er ikke like." in unlike.text
        nameless = await take(kari, link, name="  ")
        assert nameless.status_code == 422 and "Fyll inn navnet ditt." in nameless.text
        assert (await take(kari, link)).status_code == 303  # the link still works after those
    assert len(await query(settings, "select id from user_account")) == 2


async def test_taking_the_link_in_an_office_that_requires_tofaktor_sets_it_up_first(
    client: AsyncTestClient, settings: Settings
) -> None:
    """The password just chosen is a password sign-in like any other: the office's second
    factor is set up before the person is signed in."""
    import pyotp

    from tests.test_totp import codes_on, secret_on

    await execute(
        settings,
        "insert into signin_settings (office_id, oidc_enabled, oidc_display_name, oidc_issuer,"
        " oidc_client_id, oidc_create_users, oidc_default_role, oidc_role_claim, oidc_role_map,"
        " sso_required, totp_required, audit_retention_years, updated_at) select id, false, '',"
        " '', '', false, 'lesetilgang', '', '', false, true, 5, created_at from office",
    )
    link = await invited_link(client)
    async with stranger(settings) as kari:
        taken = await take(kari, link)
        assert taken.status_code == 303
        assert taken.headers["location"] == "/login/tofaktor/oppsett"
        assert (await kari.get("/integrasjoner", follow_redirects=False)).status_code in (302, 303)
        page = await kari.get("/login/tofaktor/oppsett")
        assert page.status_code == 200 and "Kontoret krever tofaktor." in page.text
        secret = secret_on(page.text)
        done = await kari.post(
            "/login/tofaktor/oppsett",
            data={"code": pyotp.TOTP(secret).now(), "_csrf_token": csrf(kari)},
        )
        assert done.status_code == 200 and len(codes_on(done.text)) == 10
        assert (await kari.get("/integrasjoner", follow_redirects=False)).status_code == 200
    [(enabled,)] = await query(
        settings, f"select totp_enabled_at from user_account where email = '{NEW}'"
    )
    assert enabled is not None


async def test_requiring_sso_without_a_provider_still_lets_an_invited_person_choose_a_password(
    client: AsyncTestClient, settings: Settings
) -> None:
    """As at /login: a rule with no provider able to sign anyone in is not in force, or the
    invitation could not be taken at all."""
    await execute(
        settings,
        "insert into signin_settings (office_id, oidc_enabled, oidc_display_name, oidc_issuer,"
        " oidc_client_id, oidc_create_users, oidc_default_role, oidc_role_claim, oidc_role_map,"
        " sso_required, totp_required, audit_retention_years, updated_at) select id, false, '',"
        " '', '', false, 'lesetilgang', '', '', true, false, 5, created_at from office",
    )
    link = await invited_link(client)
    async with stranger(settings) as kari:
        shown = await kari.get(link)
        assert shown.status_code == 200 and "Velg passord" in shown.text
        assert (await take(kari, link)).status_code == 303


async def test_the_token_is_redacted_from_log_lines() -> None:
    assert "abcdefghijklmnopqrstuvwxyz0123456789" not in redact(
        'GET /invitasjon/abcdefghijklmnopqrstuvwxyz0123456789-_AB HTTP/1.1" 200'
    )


# -- e-mail -------------------------------------------------------------------------------


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


async def test_the_link_is_emailed_through_the_smtp_server(
    settings: Settings, smtp_server: tuple[int, Inbox]
) -> None:
    from app import create_app

    port, inbox = smtp_server
    settings = replace(settings, smtp=smtp_config(port), public_base_url=BASE_URL)
    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        await create_user(db, email=ADMIN, password=PASSWORD, office_name="Kontor A AS")
    await engine.dispose()
    async with AsyncTestClient(create_app(settings)) as client:
        await login(client, ADMIN)
        response = await invite(client)
        assert "Vi har sendt lenken på e-post." in response.text
        link = LINK.search(response.text).group(1)  # type: ignore[union-attr]
    assert link.startswith(f"{BASE_URL}/invitasjon/")
    assert inbox.recipients == [[NEW]]
    (message,) = inbox.messages
    assert message["Subject"] == "Invitasjon til Kontor A AS i ERP-integrasjon"
    body = message.get_content()
    assert link in body and "Regnskapsfører" in body and "én gang" in body


async def test_a_failed_email_leaves_the_link_to_copy(settings: Settings) -> None:
    from app import create_app

    settings = replace(settings, smtp=smtp_config(free_port()))  # nobody listens there
    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        await create_user(db, email=ADMIN, password=PASSWORD, office_name="Kontor A AS")
    await engine.dispose()
    async with AsyncTestClient(create_app(settings)) as client:
        await login(client, ADMIN)
        response = await invite(client)
    assert "E-posten ble ikke sendt: Kunne ikke koble til e-postserveren." in response.text
    assert LINK.search(response.text)


# -- roles and deactivation ---------------------------------------------------------------


async def test_the_last_administrator_cannot_be_demoted(
    client: AsyncTestClient, settings: Settings
) -> None:
    ((me,),) = await query(settings, f"select id from user_account where email = '{ADMIN}'")
    edit = await client.get(f"{PAGE}/{me}/endre", headers=htmx(client))
    assert edit.status_code == 200 and 'name="role"' in edit.text and "Avbryt" in edit.text
    refused = await client.post(
        f"{PAGE}/{me}/rolle", data={"role": "lesetilgang"}, headers=htmx(client)
    )
    assert refused.status_code == 422
    assert "er den siste aktive administratoren og kan ikke få en annen rolle" in refused.text
    assert await query(settings, f"select role from user_account where id = {me}") == [
        ("administrator",)
    ]
    itself = await client.post(f"{PAGE}/{me}/deaktiver", headers=htmx(client))
    assert itself.status_code == 422 and "Du kan ikke deaktivere deg selv." in itself.text

    # With a second administrator, the first may step down.
    await add_person(settings, "sjef@kontor-a.no", "administrator")
    stepped = await client.post(
        f"{PAGE}/{me}/rolle", data={"role": "lesetilgang"}, headers=htmx(client)
    )
    assert stepped.status_code == 200 and "Lesetilgang" in stepped.text
    assert (await client.get(PAGE)).status_code == 403  # at once, on the next request
    before_after = [json.loads(d) for k, _, _, d in await audit_rows(settings) if k == "user.role"]
    assert before_after == [{"before": "Administrator", "after": "Lesetilgang"}]


async def test_the_last_administrator_cannot_be_deactivated(
    client: AsyncTestClient, settings: Settings
) -> None:
    """Through the page an administrator can only reach this for themselves; the service
    refuses it for anyone (an API token, say)."""
    ((me, office),) = await query(
        settings, f"select id, office_id from user_account where email = '{ADMIN}'"
    )
    engine = create_engine(settings.database_url)
    try:
        async with open_session(create_session_factory(engine)) as db:
            with pytest.raises(users.UserChangeError, match="siste aktive administratoren"):
                await users.deactivate(db, Actor(office, "API-nøkkel: x", token_id=None), me)
    finally:
        await engine.dispose()
    assert await query(settings, f"select active from user_account where id = {me}") == [(True,)]


async def two_administrators(settings: Settings) -> tuple[int, int, int]:
    """The office's two administrators, a@ and b@: (office id, a's id, b's id)."""
    engine = create_engine(settings.database_url)
    try:
        async with open_session(create_session_factory(engine)) as db:
            a = await create_user(db, email="a@kontor-a.no", password=PASSWORD, office_name="K")
            b = await create_user(db, email="b@kontor-a.no", password=PASSWORD, office_name="K")
            assert a.id is not None and b.id is not None
            return a.office_id, a.id, b.id
    finally:
        await engine.dispose()


def slow_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """The count of the other administrators takes a while to act on: a second change
    starts meanwhile, as when two administrators press the button at the same moment."""
    counted = users._others

    async def slowly(*args: object) -> int:
        found = await counted(*args)  # type: ignore[arg-type]
        await anyio.sleep(0.5)
        return found

    monkeypatch.setattr(users, "_others", slowly)


@pytest.mark.parametrize("change", ["role", "deactivate"])
async def test_two_administrators_removing_each_other_at_once_leave_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    """Each sees the other as an administrator when counting; the second to count waits for
    the first change and is refused (the office's row is locked before counting, on
    SQLite as on PostgreSQL)."""
    office, a, b = await two_administrators(settings)
    slow_count(monkeypatch)
    engine = create_engine(settings.database_url)
    outcomes: dict[str, str] = {}

    async def remove(me: int, email: str, them: int, wait: float) -> None:
        await anyio.sleep(wait)
        async with open_session(create_session_factory(engine)) as db:
            actor = Actor(office, email, user_id=me)
            try:
                if change == "role":
                    await users.change_role(db, actor, them, "lesetilgang")
                else:
                    await users.deactivate(db, actor, them)
            except users.UserChangeError as exc:
                outcomes[email] = exc.message
            else:
                outcomes[email] = "done"

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(remove, a, "a@kontor-a.no", b, 0)
            tasks.start_soon(remove, b, "b@kontor-a.no", a, 0.1)
    finally:
        await engine.dispose()
    assert outcomes["a@kontor-a.no"] == "done"
    assert "er den siste aktive administratoren" in outcomes["b@kontor-a.no"]
    left = await query(
        settings,
        "select email from user_account where role = 'administrator' and active = true",
    )
    assert left == [("a@kontor-a.no",)]


async def test_a_role_claim_and_a_demotion_at_once_leave_an_administrator(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b@ is demoted on the page while a@ signs in through the provider with a role claim
    that makes a@ a reader: the claim is not applied to the office's last administrator."""
    from services import oidc

    office, a, b = await two_administrators(settings)
    slow_count(monkeypatch)
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    provider = oidc.Provider(office, "Microsoft", "https://idp.example", "app", "hemmelig")

    async def demote_b() -> None:
        async with open_session(factory) as db:
            await users.change_role(db, Actor(office, "a@kontor-a.no", user_id=a), b, "lesetilgang")

    async def claim_demotes_a() -> None:
        await anyio.sleep(0.1)
        async with open_session(factory) as db:
            user = await db.get(User, a)
            assert user is not None
            actor = Actor(office, user.email, user_id=a)
            await oidc._apply_role(db, provider, user, Role.READER, actor)
            await db.commit()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(demote_b)
            tasks.start_soon(claim_demotes_a)
    finally:
        await engine.dispose()
    assert await query(settings, "select email, role from user_account order by email") == [
        ("a@kontor-a.no", "administrator"),
        ("b@kontor-a.no", "lesetilgang"),
    ]


async def test_deactivating_ends_the_persons_sessions_at_once(
    client: AsyncTestClient, settings: Settings
) -> None:
    await add_person(settings, "fører@kontor-a.no", "regnskapsforer")
    ((them,),) = await query(
        settings, "select id from user_account where email = 'fører@kontor-a.no'"
    )
    async with stranger(settings) as other:
        await login(other, "fører@kontor-a.no")
        assert (await other.get("/integrasjoner", follow_redirects=False)).status_code == 200
        done = await client.post(f"{PAGE}/{them}/deaktiver", headers=htmx(client))
        assert done.status_code == 200 and "Deaktivert" in done.text and ">Aktiver<" in done.text
        assert (await other.get("/integrasjoner", follow_redirects=False)).status_code in (302, 303)
        await other.get("/login")
        refused = await other.post(
            "/login",
            data={"email": "fører@kontor-a.no", "password": PASSWORD, "_csrf_token": csrf(other)},
        )
        assert refused.status_code == 422
        back = await client.post(f"{PAGE}/{them}/aktiver", headers=htmx(client))
        assert back.status_code == 200 and "Aktiv" in back.text
        await login(other, "fører@kontor-a.no")
    kinds = [r[0] for r in await audit_rows(settings)]
    assert "user.deactivated" in kinds and "user.reactivated" in kinds


async def test_a_role_change_takes_effect_on_the_next_request(
    client: AsyncTestClient, settings: Settings
) -> None:
    await add_person(settings, "sjef@kontor-a.no", "administrator")
    ((them,),) = await query(
        settings, "select id from user_account where email = 'sjef@kontor-a.no'"
    )
    async with stranger(settings) as other:
        await login(other, "sjef@kontor-a.no")
        assert (await other.get(PAGE)).status_code == 200
        changed = await client.post(
            f"{PAGE}/{them}/rolle",
            data={"role": "lesetilgang", "_csrf_token": csrf(client)},
            follow_redirects=False,
        )
        assert changed.status_code == 303  # without htmx: back to the page
        assert (await other.get(PAGE)).status_code == 403
        assert (await other.get("/integrasjoner")).status_code == 200


async def test_people_of_another_office_are_out_of_reach(
    client: AsyncTestClient, settings: Settings
) -> None:
    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        await create_user(db, email="b@kontor-b.no", password=PASSWORD, office_name="Kontor B AS")
    await engine.dispose()
    ((them,),) = await query(settings, "select id from user_account where email = 'b@kontor-b.no'")
    assert "b@kontor-b.no" not in (await client.get(PAGE)).text
    for path in (f"{PAGE}/{them}/deaktiver", f"{PAGE}/{them}/rolle"):
        response = await client.post(path, data={"role": "lesetilgang"}, headers=htmx(client))
        assert response.status_code == 404
    assert await query(settings, f"select role, active from user_account where id = {them}") == [
        ("administrator", True)
    ]


# -- the command line ---------------------------------------------------------------------


def create_user_cli(
    settings: Settings, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": settings.encryption_keys[0],
        "TRIPLETEX_CONSUMER_TOKEN": "cli-test-consumer-token",
        "DATA_DIR": str(tmp_path),
        "LOG_FORMAT": "text",
    }
    env.pop("DEMO", None)
    return subprocess.run(
        [sys.executable, "app.py", "create-user", "--office", "Kontor B AS", *args],
        cwd=ROOT,
        env=env,
        input=NEW_PASSWORD + "\n",
        text=True,
        capture_output=True,
        timeout=120,
    )


async def test_create_user_takes_a_role(settings: Settings, tmp_path: Path) -> None:
    made = await anyio.to_thread.run_sync(
        create_user_cli, settings, tmp_path, "--email", "les@kontor-b.no", "--role", "lesetilgang"
    )
    assert made.returncode == 0, made.stderr
    default = await anyio.to_thread.run_sync(
        create_user_cli, settings, tmp_path, "--email", "adm@kontor-b.no"
    )
    assert default.returncode == 0, default.stderr
    wrong = await anyio.to_thread.run_sync(
        create_user_cli, settings, tmp_path, "--email", "x@kontor-b.no", "--role", "sjef"
    )
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr
    assert sorted(await query(settings, "select email, role from user_account")) == [
        ("adm@kontor-b.no", "administrator"),
        ("les@kontor-b.no", "lesetilgang"),
    ]
