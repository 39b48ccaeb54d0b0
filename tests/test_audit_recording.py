"""Every change a person or an API token makes is in the audit log, written with the change:
who, what, on what, and before → after; a refused change leaves nothing; no secret (a key,
a token, a webhook secret, a password) is ever written there."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from models.office import Role
from services.settings import Settings
from tests.api_support import TOKEN, api, bearer, create_token  # noqa: F401
from tests.conftest import (
    PASSWORD,
    OfficeDb,
    PowerOffice,
    Simulator,
    create_integration,
    csrf,
    execute,
    free_port,
    htmx,
    login,
    query,
)
from tests.login_support import add_user_with_role, change_password
from tests.saft_files import random_books, write_saft
from tests.test_poweroffice_web import answer, start

pytestmark = pytest.mark.anyio

ADMIN = "regnskap@kontor-a.no"  # conftest's logged-in user, an administrator
ACCOUNTANT = "kari@kontor-a.no"
TRIPLETEX_KEY = "demo-regnskapskontor"
INTEGRATION = "Tripletex - Klienter"  # conftest's create_integration, by its display name
WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@dataclass(frozen=True)
class Event:
    actor: str
    user_id: int | None
    token_id: int | None
    kind: str
    target: str
    details: dict[str, Any]
    address: str


async def events(settings: Settings, kind: str | None = None) -> list[Event]:
    """The office's audit events, oldest first (only of `kind` if given)."""
    where = f"WHERE kind = '{kind}'" if kind else "WHERE kind NOT LIKE 'signin%'"
    rows = await query(
        settings,
        "SELECT actor_label, actor_user_id, actor_token_id, kind, target_label, details, "
        f"address FROM audit_event {where} ORDER BY id",
    )
    return [
        Event(label, user_id, token_id, k, target, json.loads(details) if details else {}, addr)
        for label, user_id, token_id, k, target, details, addr in rows
    ]


async def user_id(settings: Settings, email: str) -> int:
    [(found,)] = await query(settings, f"SELECT id FROM user_account WHERE email = '{email}'")
    return found


async def assert_nowhere_in_log(settings: Settings, *secrets: str) -> None:
    """Not in any column of any audit event."""
    rows = await query(
        settings, "SELECT actor_label, kind, target_label, details, address FROM audit_event"
    )
    text = "\n".join(" ".join(str(value) for value in row) for row in rows)
    assert rows
    for secret in secrets:
        assert secret and secret not in text, "a secret in the audit log"


async def first_client(settings: Settings, integration_id: int) -> tuple[int, str]:
    """A client of the integration and the label the log names it by."""
    [(client_id, name, org)] = await query(
        settings,
        "SELECT id, name, org_number FROM client "
        f"WHERE integration_id = {integration_id} ORDER BY sort_key LIMIT 1",
    )
    return client_id, f"Klient: {name} ({org})"


@pytest.fixture
async def accountant(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """A Regnskapsfører of the same office, signed in."""
    from app import create_app

    await add_user_with_role(settings.database_url, ACCOUNTANT, Role.ACCOUNTANT)
    async with AsyncTestClient(create_app(settings)) as test_client:
        await login(test_client, ACCOUNTANT)
        yield test_client


# -- the client table --------------------------------------------------------------------


async def test_switches_record_who_turned_what_from_what_to_what(
    client: AsyncTestClient, accountant: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_integration(client)
    client_id, target = await first_client(settings, integration_id)
    base = f"/integrasjoner/{integration_id}/klienter/{client_id}"

    for switch, on in (("active", "true"), ("send_data", "false"), ("delete_accounts", "true")):
        response = await accountant.post(
            f"{base}/{switch}", data={"on": on}, headers=htmx(accountant)
        )
        assert response.status_code == 200, response.text
    # The same click again changes nothing, and records nothing.
    await accountant.post(f"{base}/active", data={"on": "true"}, headers=htmx(accountant))

    kari = await user_id(settings, ACCOUNTANT)
    about = {"integration": INTEGRATION, "client_id": client_id, "integration_id": integration_id}
    [active] = await events(settings, "client.active")
    assert (active.actor, active.user_id, active.token_id) == (ACCOUNTANT, kari, None)
    assert active.target == target and active.address
    assert active.details == {"before": False, "after": True, **about}
    [send_data] = await events(settings, "client.send_data")
    assert send_data.details == {"before": True, "after": False, **about}
    [delete_accounts] = await events(settings, "client.delete_accounts")
    assert delete_accounts.details == {"before": False, "after": True, **about}
    assert {e.target for e in (send_data, delete_accounts)} == {target}


async def test_a_client_event_names_the_integration_holding_the_client(
    client: AsyncTestClient, settings: Settings
) -> None:
    """One company reached through two integrations: the log tells the two apart."""
    first = await create_integration(client)
    second = await create_integration(client, description="Kopi", same_key_as=first)
    for integration_id in (first, second):
        client_id, _ = await first_client(settings, integration_id)
        base = f"/integrasjoner/{integration_id}/klienter/{client_id}"
        await client.post(f"{base}/active", data={"on": "true"}, headers=htmx(client))

    one, other = await events(settings, "client.active")
    assert one.target == other.target  # the same company
    assert (one.details["integration"], other.details["integration"]) == (
        INTEGRATION,
        "Tripletex - Kopi",
    )
    assert (one.details["integration_id"], other.details["integration_id"]) == (first, second)
    assert one.details["client_id"] != other.details["client_id"]
    page = (await client.get("/innstillinger/logg", params={"hva": "client.active"})).text
    changes = re.findall(r'data-label="Endring">([^<]*(?:<br>[^<]*)*)</td>', page)
    assert changes == [
        "AKTIV: av → på<br>Integrasjon: Tripletex - Kopi",
        f"AKTIV: av → på<br>Integrasjon: {INTEGRATION}",
    ]  # the ids are for programs (the API), not shown


async def test_full_sync_and_sjekk_tilgang_are_recorded_as_sync_requests(
    client: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_integration(client)
    client_id, target = await first_client(settings, integration_id)
    base = f"/integrasjoner/{integration_id}/klienter/{client_id}"

    await client.post(f"{base}/full_sync", data={"on": "true"}, headers=htmx(client))
    checked = await client.post(f"{base}/sjekk", headers=htmx(client))
    assert checked.status_code == 200

    full, check = await events(settings, "client.sync")
    about = {"integration": INTEGRATION, "client_id": client_id, "integration_id": integration_id}
    assert (full.actor, full.target) == (ADMIN, target)
    assert full.details == {
        "action": "Full synkronisering",
        "before": False,
        "after": True,
        **about,
    }
    assert (check.target, check.details) == (target, {"action": "Sjekk tilgang på nytt", **about})


async def test_a_refused_switch_records_nothing(
    client: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_integration(client)
    client_id, _ = await first_client(settings, integration_id)
    refused = await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/ukjent",
        data={"on": "true"},
        headers=htmx(client),
    )
    assert refused.status_code == 404
    assert [e.kind for e in await events(settings)] == ["integration.created"]


async def test_bulk_actions_record_the_count_changed_the_count_shown_and_the_filter(
    client: AsyncTestClient,
    accountant: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
) -> None:
    integration_id = await create_integration(client)
    base = f"/integrasjoner/{integration_id}"
    names = [c.name.casefold() for c in simulator.state.clients_of(TRIPLETEX_KEY)]
    words = Counter(w for name in names for w in set(name.split()) if w.isalpha() and len(w) > 3)
    word = words.most_common(1)[0][0]
    shown = [
        client_id
        for (client_id,) in await query(
            settings,
            f"SELECT id FROM client WHERE integration_id = {integration_id} "
            f"AND search_text LIKE '%{word}%' ORDER BY id",
        )
    ]
    assert len(shown) >= 2
    await accountant.post(
        f"{base}/klienter/{shown[0]}/active", data={"on": "true"}, headers=htmx(accountant)
    )

    activated = await accountant.post(
        f"{base}/aktiver-alle", data={"q": word, "sort": "-navn"}, headers=htmx(accountant)
    )
    assert activated.status_code == 200
    deactivated = await accountant.post(
        f"{base}/deaktiver-alle", data={"status": "inaktiv"}, headers=htmx(accountant)
    )
    assert deactivated.status_code == 200  # all of them inactive already: nothing changes
    await accountant.post(f"{base}/deaktiver-alle", data={"q": word}, headers=htmx(accountant))

    activation, deactivation = await events(settings, "client.bulk")
    assert (activation.actor, activation.user_id) == (
        ACCOUNTANT,
        await user_id(settings, ACCOUNTANT),
    )
    assert activation.target == "Integrasjon: Tripletex - Klienter"
    assert activation.details == {
        "action": "Aktiver alle viste",
        "count": len(shown) - 1,  # one was on already
        "shown": len(shown),
        "filter": {"q": word, "sort": "-navn"},
    }
    assert deactivation.details == {
        "action": "Deaktiver alle viste",
        "count": len(shown),
        "shown": len(shown),
        "filter": {"q": word, "sort": "navn"},
    }


async def test_a_bulk_change_records_each_client_it_changed(
    client: AsyncTestClient,
    accountant: AsyncTestClient,
    settings: Settings,
) -> None:
    """Who turned off this client, and when: answered for Aktiver/Deaktiver alle viste too,
    by an event of the client's own beside the summary, in the same transaction."""
    integration_id = await create_integration(client)
    base = f"/integrasjoner/{integration_id}"
    clients = await query(
        settings,
        f"SELECT id, name, org_number FROM client WHERE integration_id = {integration_id} "
        "ORDER BY id",
    )
    first_id = clients[0][0]
    await accountant.post(
        f"{base}/klienter/{first_id}/active", data={"on": "true"}, headers=htmx(accountant)
    )

    await accountant.post(f"{base}/aktiver-alle", headers=htmx(accountant))
    await client.post(f"{base}/deaktiver-alle", headers=htmx(client))

    kari, admin = await user_id(settings, ACCOUNTANT), await user_id(settings, ADMIN)
    switched = await events(settings, "client.active")
    one_by_one, bulk_on, bulk_off = (
        switched[0],
        switched[1 : len(clients)],
        switched[len(clients) :],
    )
    assert "bulk" not in one_by_one.details
    assert len(bulk_on) == len(clients) - 1  # the first was on already
    assert len(bulk_off) == len(clients)
    about = {"integration": INTEGRATION, "integration_id": integration_id}
    for event in bulk_on:
        assert (event.actor, event.user_id) == (ACCOUNTANT, kari)
        assert event.details == {
            "before": False,
            "after": True,
            "bulk": True,
            **about,
            "client_id": event.details["client_id"],
        }
    assert sorted(e.details["client_id"] for e in bulk_off) == [c[0] for c in clients]
    assert sorted(e.target for e in bulk_off) == sorted(
        f"Klient: {name} ({org})" if org else f"Klient: {name}" for _, name, org in clients
    )
    assert {(e.actor, e.user_id, e.details["after"], e.details["bulk"]) for e in bulk_off} == {
        (ADMIN, admin, False, True)
    }
    # Beside the one summary each; and the page reads it as a person asks it.
    assert len(await events(settings, "client.bulk")) == 2
    page = (await client.get("/innstillinger/logg", params={"hva": "client.active"})).text
    assert "AKTIV: på → av<br>Masseendring: ja<br>Integrasjon: Tripletex - Klienter" in page


async def test_a_bulk_change_of_a_thousand_clients_records_them_in_a_few_statements(
    office_db: OfficeDb,
) -> None:
    from sqlalchemy import event

    from models import Client, Integration
    from services.audit import Actor
    from services.clients import ClientQuery, set_all_active

    async with office_db.factory() as db:
        integration = Integration(
            office_id=office_db.office_id,
            system="tripletex",
            description="Mange",
            key_ciphertext="x",
            key_last4="abcd",
            key_kind="accountant",
            erp_company_id=1,
            erp_company_name="Kontoret",
        )
        db.add(integration)
        await db.flush()
        assert integration.id is not None
        db.add_all(
            Client(
                integration_id=integration.id,
                erp_id=n,
                name=f"Firma {n} AS",
                org_number=str(900_000_000 + n),
                sort_key=f"firma {n:04d}",
                search_text=f"firma {n} as",
            )
            for n in range(1000)
        )
        await db.commit()
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        sync_engine = db.get_bind()
        event.listen(sync_engine, "before_cursor_execute", count)
        try:
            actor = Actor(office_db.office_id, "kari@kontor-a.no", user_id=None)
            changed = await set_all_active(
                db,
                integration.id,
                True,
                ClientQuery(),
                actor,
                target="Integrasjon: Tripletex - Mange",
                integration="Tripletex - Mange",
            )
        finally:
            event.remove(sync_engine, "before_cursor_execute", count)

    assert changed == 1000
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO AUDIT_EVENT")]
    assert len(inserts) <= 3, "the events are inserted together, not one by one"
    assert len(statements) <= 15, statements
    rows = await office_db_rows(office_db)
    assert rows["client.bulk"] == 1 and rows["client.active"] == 1000


async def office_db_rows(office_db: OfficeDb) -> Counter[str]:
    from sqlmodel import select

    from models.audit import AuditEvent

    async with office_db.factory() as db:
        return Counter((await db.exec(select(AuditEvent.kind))).all())


async def test_oppdater_klientliste_records_what_came_in(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    simulator.state.grant_new_client(TRIPLETEX_KEY)
    lost = simulator.state.clients_of(TRIPLETEX_KEY)[0]
    simulator.state.revoke_client(TRIPLETEX_KEY, lost.id)

    response = await client.post(f"/integrasjoner/{integration_id}/oppdater", headers=htmx(client))

    assert response.status_code == 200
    [refreshed] = await events(settings, "integration.refreshed")
    assert (refreshed.actor, refreshed.target) == (ADMIN, "Integrasjon: Tripletex - Klienter")
    assert refreshed.details == {"added": 1, "regained": 0, "lost": 1}


# -- integrations ------------------------------------------------------------------------


async def test_integration_created_changed_and_deleted_are_recorded_without_the_key(
    client: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_integration(client, description="Bergen")
    [(count,)] = await query(settings, "SELECT COUNT(*) FROM client")

    described = await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"description": "Bergen og Voss", "key": "", "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert described.status_code == 303
    rekeyed = await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"description": "Bergen og Voss", "key": TRIPLETEX_KEY, "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert rekeyed.status_code == 303
    deleted = await client.post(
        f"/integrasjoner/{integration_id}/slett",
        data={"_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert deleted.status_code == 303

    created, description, key, gone = await events(settings)
    assert (created.kind, created.actor) == ("integration.created", ADMIN)
    assert created.target == "Integrasjon: Tripletex - Bergen"
    assert created.details == {"system": "Tripletex", "description": "Bergen", "clients": count}
    assert description.kind == "integration.changed"
    assert description.target == "Integrasjon: Tripletex - Bergen og Voss"
    assert description.details == {"description": {"before": "Bergen", "after": "Bergen og Voss"}}
    assert key.kind == "integration.changed"
    assert key.details == {"key": "endret", "added": 0, "lost": 0, "regained": 0}
    assert gone.kind == "integration.deleted"
    assert gone.details == {
        "name": "Tripletex - Bergen og Voss",
        "system": "Tripletex",
        "clients": count,
    }
    await assert_nowhere_in_log(settings, TRIPLETEX_KEY)


async def test_refused_integration_changes_record_nothing(
    client: AsyncTestClient, settings: Settings
) -> None:
    refused = await client.post(
        "/integrasjoner/ny",
        data={"key": "ikke-en-nokkel", "description": "Feil", "_csrf_token": csrf(client)},
    )
    assert refused.status_code == 422
    integration_id = await create_integration(client)
    personal = await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"description": "kari@kontoret.no", "_csrf_token": csrf(client)},
    )
    assert personal.status_code == 422
    unchanged = await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"description": "Klienter", "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert unchanged.status_code == 303  # saved, but nothing changed
    assert [e.kind for e in await events(settings)] == ["integration.created"]
    await assert_nowhere_in_log(settings, "ikke-en-nokkel", TRIPLETEX_KEY)


async def test_poweroffice_onboarding_and_reonboarding_are_recorded(
    client: AsyncTestClient, settings: Settings, poweroffice: PowerOffice
) -> None:
    ids = sorted(poweroffice.state.clients)
    landed = await client.get(await answer(poweroffice, await start(client), clients=ids[:3]))
    integration_id = int(landed.url.path.rstrip("/").rsplit("/", 1)[1])
    refresh = await client.post(f"/integrasjoner/{integration_id}/oppdater", headers=htmx(client))
    await client.get(await answer(poweroffice, refresh.headers["hx-redirect"], clients=ids[:5]))

    [created] = await events(settings, "integration.created")
    assert created.actor == ADMIN
    assert created.target == "Integrasjon: PowerOffice Go - PowerOffice-klienter"
    assert created.details == {
        "system": "PowerOffice Go",
        "description": "PowerOffice-klienter",
        "clients": 3,
    }
    [refreshed] = await events(settings, "integration.refreshed")
    assert refreshed.target == created.target
    assert refreshed.details == {"added": 2, "renewed": 3}
    keys = [c.client_key for c in poweroffice.state.clients.values() if c.client_key]
    await assert_nowhere_in_log(settings, *keys)


# -- SAF-T imports -------------------------------------------------------------------------


async def create_saft_integration(client: AsyncTestClient) -> int:
    response = await client.post(
        "/integrasjoner/ny",
        data={"system": "saft", "description": "Lokale", "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


async def test_saft_imports_are_recorded_as_the_person_or_the_token_that_sent_them(
    client: AsyncTestClient,
    api: AsyncTestClient,  # noqa: F811
    accountant: AsyncTestClient,
    settings: Settings,
    tmp_path: Path,
) -> None:
    integration_id = await create_saft_integration(client)
    token = await create_token(client, "Visma-eksport")
    [(token_id,)] = await query(settings, "SELECT id FROM api_token")
    first = write_saft(tmp_path / "a.xml", random_books(year=2024))
    second = write_saft(tmp_path / "b.xml", random_books(year=2025))

    uploaded = await accountant.post(
        f"/integrasjoner/{integration_id}/saft-importer",
        params={"filnavn": "2024.xml"},
        content=first.path.read_bytes(),
        headers={**htmx(accountant), "Content-Type": "application/xml"},
    )
    assert uploaded.status_code == 201, uploaded.text
    pushed = await api.post(
        f"/api/v1/integrations/{integration_id}/saft-imports",
        content=second.path.read_bytes(),
        headers={**bearer(token), "Content-Type": "application/xml"},
        params={"filename": "2025.xml"},
    )
    assert pushed.status_code == 201, pushed.text

    by_person, by_token = await events(settings, "saft.import")
    [(client_id,)] = await query(
        settings, f"SELECT id FROM client WHERE integration_id = {integration_id}"
    )
    about = {
        "integration": "SAF-T-fil - Lokale",
        "client_id": client_id,
        "integration_id": integration_id,
    }
    assert (by_person.actor, by_person.token_id) == (ACCOUNTANT, None)
    assert by_person.user_id == await user_id(settings, ACCOUNTANT)
    assert by_person.target == "Klient: Testfirma AS (987654325)"
    assert by_person.details == {
        "file": "2024.xml",
        "status": "imported",
        "months": "2024-01–2024-12",
        **about,
    }
    assert (by_token.actor, by_token.user_id, by_token.token_id) == (
        "API-nøkkel: Visma-eksport",
        None,
        token_id,
    )
    assert by_token.details == {
        "file": "2025.xml",
        "status": "imported",
        "months": "2025-01–2025-12",
        **about,
    }
    await assert_nowhere_in_log(settings, token)


async def test_a_refused_saft_file_is_recorded_with_its_status(
    client: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_saft_integration(client)
    refused = await client.post(
        f"/integrasjoner/{integration_id}/saft-importer",
        params={"filnavn": "tom.xml"},
        content=b"",
        headers={**htmx(client), "Content-Type": "application/xml"},
    )
    assert refused.status_code == 422
    [event] = await events(settings, "saft.import")
    assert event.target == "Integrasjon: SAF-T-fil - Lokale"
    assert event.details == {"file": "tom.xml", "status": "refused", "months": ""}


# -- settings ------------------------------------------------------------------------------


async def test_api_tokens_created_and_revoked_are_recorded_by_name_never_the_token(
    client: AsyncTestClient, settings: Settings
) -> None:
    token = await create_token(client, "Rapportering")
    [(token_id,)] = await query(settings, "SELECT id FROM api_token")
    empty = await client.post("/innstillinger/api-nokler", data={"name": " "}, headers=htmx(client))
    assert "Gi nøkkelen et navn" in empty.text
    for _ in range(2):  # the second time it is revoked already: nothing more is recorded
        await client.post(
            f"/innstillinger/api-nokler/{token_id}/trekk-tilbake", headers=htmx(client)
        )

    created, revoked = await events(settings)
    assert (created.kind, created.actor) == ("api_token.created", ADMIN)
    assert created.target == "API-nøkkel: Rapportering"
    assert created.details["name"] == "Rapportering"
    assert (revoked.kind, revoked.target) == ("api_token.revoked", created.target)
    await assert_nowhere_in_log(settings, token, token[len("erpapi_") :])


async def test_webhook_changes_are_recorded_and_its_secret_only_as_changed(
    client: AsyncTestClient, settings: Settings
) -> None:
    await client.get("/innstillinger/varsler")
    # A receiver's address may carry its bearer token: only scheme, host and port are kept.
    url, other = "http://127.0.0.1:9/varsler", "http://127.0.0.1:9/nye-varsler?token=s3cr3t-xyz"
    origin = "http://127.0.0.1:9"
    set_up = await client.post(
        "/innstillinger/varsler", data={"url": url, "enabled": "on"}, headers=htmx(client)
    )
    secrets = set(WEBHOOK_SECRET.findall(set_up.text))
    refused = await client.post(
        "/innstillinger/varsler", data={"url": "ftp://x.no", "enabled": "on"}, headers=htmx(client)
    )
    assert refused.status_code == 422
    await client.post("/innstillinger/varsler", data={"url": other}, headers=htmx(client))
    renewed = await client.post("/innstillinger/varsler/ny-hemmelighet", headers=htmx(client))
    secrets |= set(WEBHOOK_SECRET.findall(renewed.text))
    await client.post("/innstillinger/varsler/slett", headers=htmx(client))

    created, changed, secret, deleted = await events(settings)
    assert {e.kind for e in (created, changed, secret, deleted)} == {"notifications.changed"}
    assert {e.target for e in (created, changed, secret, deleted)} == {"Varsler: webhook"}
    assert created.details == {
        "url": {"before": None, "after": origin},
        "url_path": "endret",
        "enabled": {"before": None, "after": True},
        "secret": "endret",
    }
    assert changed.details == {  # the same host: only that the rest changed
        "url_path": "endret",
        "enabled": {"before": True, "after": False},
    }
    assert secret.details == {"secret": "endret"}
    assert deleted.details == {
        "url": {"before": origin, "after": None},
        "url_path": "endret",
        "enabled": {"before": False, "after": None},
    }
    assert len(secrets) == 2
    await assert_nowhere_in_log(
        settings, "s3cr3t-xyz", "/varsler", *secrets, *(s.removeprefix("whsec_") for s in secrets)
    )


async def test_a_webhook_moved_to_another_host_shows_both_hosts_only() -> None:
    from services.notifications.endpoints import url_changes

    assert url_changes(
        "https://a.example.no/hook?k=1", "https://user:pw@B.example.no:8443/hook?k=1"
    ) == {
        "url": {"before": "https://a.example.no", "after": "https://b.example.no:8443"},
        "url_path": "endret",  # the user part is not the host's
    }
    assert url_changes("https://[2001:db8::1]/x", "https://[2001:db8::1]/x") == {}


async def test_email_alert_changes_are_recorded(
    client: AsyncTestClient, settings: Settings
) -> None:
    page = "/innstillinger/varsler/e-post"
    await client.post(
        page, data={"address": "varsler@kontor-a.no", "enabled": "on"}, headers=htmx(client)
    )
    refused = await client.post(
        page, data={"address": "ikke en adresse", "enabled": "on"}, headers=htmx(client)
    )
    assert refused.status_code == 422
    await client.post(page, data={"address": "varsler@kontor-a.no"}, headers=htmx(client))
    await client.post(page, data={"address": "varsler@kontor-a.no"}, headers=htmx(client))  # same

    switched_on, switched_off = await events(settings)
    assert (switched_on.kind, switched_on.target) == ("notifications.changed", "Varsler: e-post")
    assert switched_on.details == {
        "address": {"before": None, "after": "varsler@kontor-a.no"},
        "enabled": {"before": None, "after": True},
    }
    assert switched_off.details == {"enabled": {"before": True, "after": False}}


async def test_a_password_change_is_recorded_as_changed_never_the_password(
    client: AsyncTestClient, settings: Settings
) -> None:
    new = "et-helt-nytt-passord-9876"
    mismatch = await change_password(client, PASSWORD, new, repeat=new + "x")
    assert mismatch.status_code == 422
    assert await events(settings, "user.password") == []

    changed = await change_password(client, PASSWORD, new)

    assert changed.status_code == 200, changed.text
    [event] = await events(settings, "user.password")
    assert (event.actor, event.target) == (ADMIN, ADMIN)
    assert event.user_id == await user_id(settings, ADMIN)
    assert event.details == {"password": "endret"}
    await assert_nowhere_in_log(settings, new, PASSWORD)


# -- sign-ins ------------------------------------------------------------------------------


@asynccontextmanager
async def browser(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """Another browser: nobody signed in."""
    from app import create_app

    async with AsyncTestClient(create_app(settings)) as other:
        await other.get("/login")
        yield other


async def try_password(other: AsyncTestClient, email: str, password: str) -> int:
    response = await other.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": csrf(other)},
        follow_redirects=False,
    )
    return response.status_code


async def test_a_failed_sign_in_is_by_nobody_and_names_the_account_tried(
    client: AsyncTestClient, accountant: AsyncTestClient, settings: Settings
) -> None:
    async with browser(settings) as other:
        assert await try_password(other, ACCOUNTANT, "ikke-kari-sitt-passord") == 422

    [failed] = await events(settings, "signin.failed")
    assert (failed.actor, failed.user_id, failed.token_id) == (
        f"{ACCOUNTANT} (mislykket)",
        None,
        None,
    )
    assert failed.target == ACCOUNTANT and failed.address
    assert failed.details == {"reason": "feil passord"}
    # Kari's own events are hers; someone's attempt at her account is not among them.
    kari = await user_id(settings, ACCOUNTANT)
    page = (await client.get("/innstillinger/logg", params={"hvem": str(kari)})).text
    assert 'data-kind="signin"' in page and 'data-kind="signin.failed"' not in page
    everyone = (await client.get("/innstillinger/logg", params={"hva": "signin.failed"})).text
    assert f"{ACCOUNTANT} (mislykket)" in everyone


async def test_attempts_refused_while_locked_are_not_recorded(
    client: AsyncTestClient, accountant: AsyncTestClient, settings: Settings
) -> None:
    async with browser(settings) as other:
        answers = [await try_password(other, ACCOUNTANT, f"feil-{n}") for n in range(12)]
        assert await try_password(other, ACCOUNTANT, PASSWORD) == 429  # not even checked
    first_lock = answers.index(429)
    assert answers[:first_lock] == [422] * first_lock and set(answers[first_lock:]) == {429}

    reasons = [e.details["reason"] for e in await events(settings, "signin.failed")]
    # Each checked failure, the last of them the one that brought the lock; none after it.
    assert reasons == ["feil passord"] * first_lock + ["passord avvist, nå låst for nye forsøk"]


async def test_a_password_refused_because_the_office_requires_sso_is_recorded(
    client: AsyncTestClient, accountant: AsyncTestClient, settings: Settings
) -> None:
    from tests.oidc_support import Provider, configure

    provider = Provider(url="https://idp.example.no", tamper=None, client_id="erp")  # type: ignore[arg-type]
    provider.client_secret = "hemmelig"
    await configure(settings, "Kontor A AS", provider, sso_required=True)
    async with browser(settings) as other:
        assert await try_password(other, ACCOUNTANT, PASSWORD) == 403

    [refused] = await events(settings, "signin.failed")
    assert (refused.actor, refused.user_id, refused.target) == (
        f"{ACCOUNTANT} (mislykket)",
        None,
        ACCOUNTANT,
    )
    assert refused.details == {
        "reason": "passord avslått: kontoret krever innlogging via leverandøren"
    }


async def test_a_provider_down_at_the_sign_in_button_is_recorded_once_a_minute(
    client: AsyncTestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Anyone may press Logg inn med …: while the provider is down, one event a minute per
    office says so, however often it is pressed."""
    from routes import sso
    from tests.oidc_support import Provider, configure

    now = [1000.0]
    monkeypatch.setattr(sso, "START_FAILURES", sso.OncePerOffice(clock=lambda: now[0]))
    down = Provider(url=f"http://127.0.0.1:{free_port()}", tamper=None, client_id="erp")  # type: ignore[arg-type]
    down.client_secret = "hemmelig"
    office_id = await configure(settings, "Kontor A AS", down)

    async with browser(settings) as other:
        for seconds in (0, 1, 30, 59, 61, 62):
            now[0] = 1000.0 + seconds
            pressed = await other.get(f"/login/oidc/{office_id}", follow_redirects=False)
            assert pressed.headers["location"] == "/login?sso=utilgjengelig"

    failed = await events(settings, "signin.failed")
    assert len(failed) == 2  # at 0 s and at 61 s
    assert {(e.actor, e.user_id, e.target) for e in failed} == {("ukjent (mislykket)", None, "")}
    assert {e.details["code"] for e in failed} == {"utilgjengelig"}


async def test_taking_an_invitation_records_the_sign_in_it_is(
    client: AsyncTestClient, settings: Settings
) -> None:
    from tests.test_users import NEW, invited_link, stranger, take

    link = await invited_link(client)
    async with stranger(settings) as kari:
        taken = await take(kari, link)
        assert taken.status_code == 303 and taken.headers["location"] == "/integrasjoner"

    [joined] = await events(settings, "user.joined")
    signins = [e for e in await events(settings, "signin") if e.actor == NEW]
    assert len(signins) == 1
    [signin] = signins
    assert signin.user_id == joined.user_id == await user_id(settings, NEW)
    assert signin.details == {"method": "invitasjon", "second_factor": "nei"}


# -- Prøv igjen ----------------------------------------------------------------------------


async def test_prov_igjen_on_a_webhook_delivery_is_recorded(
    client: AsyncTestClient, settings: Settings
) -> None:
    await client.get("/innstillinger/varsler")
    await client.post(
        "/innstillinger/varsler",
        data={"url": "http://127.0.0.1:9/varsler", "enabled": "on"},
        headers=htmx(client),
    )
    [(endpoint_id,)] = await query(settings, "SELECT id FROM notification_endpoint")
    for message_id, status in (("msg_feilet", "failed"), ("msg_levert", "delivered")):
        await execute(
            settings,
            "INSERT INTO notification_delivery (endpoint_id, message_id, event_type, payload, "
            f"status, attempts, created_at) VALUES ({endpoint_id}, '{message_id}', "
            f"'client.synced', '{{}}', '{status}', 8, CURRENT_TIMESTAMP)",
        )
    ids = dict(await query(settings, "SELECT message_id, id FROM notification_delivery"))

    again = await client.post(
        f"/innstillinger/varsler/leveranser/{ids['msg_feilet']}/prov-igjen", headers=htmx(client)
    )
    assert again.status_code == 200
    delivered = await client.post(
        f"/innstillinger/varsler/leveranser/{ids['msg_levert']}/prov-igjen", headers=htmx(client)
    )
    assert delivered.status_code == 404  # nothing to retry: nothing recorded

    [retry] = await events(settings, "notifications.retry")
    assert (retry.actor, retry.target) == (ADMIN, "Varsler: webhook")
    assert retry.details == {
        "message_id": "msg_feilet",
        "event_type": "client.synced",
        "status": {"before": "failed", "after": "pending"},
    }
    assert await query(
        settings, f"SELECT status FROM notification_delivery WHERE id = {ids['msg_feilet']}"
    ) == [("pending",)]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the provider's authlib
async def test_the_first_sso_sign_in_to_a_local_account_records_the_link(
    client: AsyncTestClient, accountant: AsyncTestClient, settings: Settings
) -> None:
    from tests.oidc_support import configure, running_provider
    from tests.test_oidc import CALLBACK, sign_in

    with running_provider() as provider:
        provider.register(CALLBACK)
        office_id = await configure(settings, "Kontor A AS", provider)
        provider.set_user("kari-sub", email=ACCOUNTANT, email_verified=True, name="Kari")
        for _ in range(2):  # linked the first time; found by the link the second
            async with browser(settings) as other:
                answer, _ = await sign_in(other, office_id, "kari-sub")
                assert answer.headers["location"] == "/integrasjoner"

    kari = await user_id(settings, ACCOUNTANT)
    [linked] = await events(settings, "user.linked")
    assert (linked.actor, linked.user_id, linked.target) == (ACCOUNTANT, kari, ACCOUNTANT)
    assert linked.details == {"provider": "Testleverandør"}
    oidc_signins = [e for e in await events(settings, "signin") if e.details["method"] == "oidc"]
    assert len(oidc_signins) == 2


async def test_a_clients_history_answers_who_turned_it_off_and_when(
    client: AsyncTestClient, accountant: AsyncTestClient, settings: Settings
) -> None:
    """From the client page, an administrator reaches the client's own events: one by one
    and through bulk actions, and no other client's."""
    integration_id = await create_integration(client)
    base = f"/integrasjoner/{integration_id}"
    [(first, first_name), (other, other_name)] = await query(
        settings,
        f"SELECT id, name FROM client WHERE integration_id = {integration_id} ORDER BY id LIMIT 2",
    )
    for client_id in (first, other):
        await accountant.post(
            f"{base}/klienter/{client_id}/active", data={"on": "true"}, headers=htmx(accountant)
        )
    await client.post(f"{base}/deaktiver-alle", headers=htmx(client))

    link = f"/innstillinger/logg?klient={first}"
    assert link in (await client.get(f"{base}/klienter/{first}/oversikt")).text
    assert link not in (await accountant.get(f"{base}/klienter/{first}/oversikt")).text
    page = (await client.get(link)).text
    assert f"Viser bare hendelser for klienten {escape(first_name)}" in page
    assert page.count('data-kind="client.active"') == 2
    assert "AKTIV: på → av<br>Masseendring: ja" in page and ADMIN in page
    assert "AKTIV: av → på" in page and ACCOUNTANT in page
    assert escape(other_name) not in page
    exported = (await client.get(f"/innstillinger/logg/logg.csv?klient={first}")).text
    assert exported.count("client.active") == 2 and other_name not in exported
    refused = await client.get("/innstillinger/logg?klient=abc")
    assert refused.status_code == 422 and "Lenken til klientens logg er ugyldig." in refused.text
