"""Roles on the server (issue 20): every route of the web app names the least role that may
use it, and each role gets exactly what the table below says: plain and through htmx, a
refusal is a 403 that says which role it takes. The API is left out: its tokens are the
office's, not a person's."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from models.office import Role
from services.auth import role_allows
from services.settings import Settings
from tests.conftest import create_integration, csrf, htmx, login, query
from tests.login_support import add_user_with_role
from web.plugins import DEMO_USER

pytestmark = pytest.mark.anyio

READER, ACCOUNTANT, ADMIN = Role.READER, Role.ACCOUNTANT, Role.ADMINISTRATOR
ROLES = (READER, ACCOUNTANT, ADMIN)
ANYONE = None  # public: no sign-in, no role

INTEGRATION = "/integrasjoner/{integration_id:int}"
CLIENT = INTEGRATION + "/klienter/{client_id:int}"
DEMO = "/demo/integrasjoner/{integration_id:int}"

# Every state-changing route of the web app and the least role that may use it. A new route
# fails tests/test_roles.py until it is here (and declares the same role with `opt=`).
TABLE: dict[tuple[str, str], Role | None] = {
    ("POST", "/login"): ANYONE,
    ("POST", "/logout"): ANYONE,
    ("POST", "/webhooks/{system:str}/{hook_id:str}"): ANYONE,
    ("POST", "/login/tofaktor"): ANYONE,  # the second factor, before the session is one
    ("POST", "/login/tofaktor/oppsett"): ANYONE,
    ("POST", "/invitasjon/{token:str}"): ANYONE,  # the invited person, not yet a user
    # One's own account: every role.
    ("POST", "/konto/passord"): READER,
    ("POST", "/konto/tofaktor"): READER,
    ("POST", "/konto/tofaktor/oppsett"): READER,
    ("POST", "/konto/tofaktor/koder"): READER,
    ("POST", "/konto/tofaktor/av"): READER,
    # Regnskapsfører: switches, bulk actions, syncs, imports, the demo's buttons.
    ("POST", CLIENT + "/{switch:str}"): ACCOUNTANT,
    ("POST", CLIENT + "/sjekk"): ACCOUNTANT,
    ("POST", INTEGRATION + "/oppdater"): ACCOUNTANT,
    ("POST", INTEGRATION + "/aktiver-alle"): ACCOUNTANT,
    ("POST", INTEGRATION + "/deaktiver-alle"): ACCOUNTANT,
    ("POST", INTEGRATION + "/saft-importer"): ACCOUNTANT,
    ("POST", DEMO + "/ny-klient"): ACCOUNTANT,
    ("POST", DEMO + "/klienter/{client_id:int}/bilag"): ACCOUNTANT,
    # Administrator: integrations and their keys, API tokens, notifications.
    ("POST", "/integrasjoner/ny"): ADMIN,
    ("POST", INTEGRATION + "/endre"): ADMIN,
    ("POST", INTEGRATION + "/slett"): ADMIN,
    ("POST", "/innstillinger/api-nokler"): ADMIN,
    ("POST", "/innstillinger/api-nokler/{token_id:int}/trekk-tilbake"): ADMIN,
    ("POST", "/innstillinger/varsler"): ADMIN,
    ("POST", "/innstillinger/varsler/ny-hemmelighet"): ADMIN,
    ("POST", "/innstillinger/varsler/test"): ADMIN,
    ("POST", "/innstillinger/varsler/e-post"): ADMIN,
    ("POST", "/innstillinger/varsler/e-post/test"): ADMIN,
    ("POST", "/innstillinger/varsler/slett"): ADMIN,
    ("POST", "/innstillinger/varsler/leveranser/{delivery_id:int}/prov-igjen"): ADMIN,
    # Administrator: users, sign-in settings, the log.
    ("POST", "/innstillinger/brukere"): ADMIN,
    ("POST", "/innstillinger/brukere/{user_id:int}/rolle"): ADMIN,
    ("POST", "/innstillinger/brukere/{user_id:int}/deaktiver"): ADMIN,
    ("POST", "/innstillinger/brukere/{user_id:int}/aktiver"): ADMIN,
    ("POST", "/innstillinger/brukere/invitasjoner/{invitation_id:int}/trekk-tilbake"): ADMIN,
    ("POST", "/innstillinger/logg/lagring"): ADMIN,
    ("POST", "/innstillinger/palogging"): ADMIN,
    ("POST", "/innstillinger/palogging/test"): ADMIN,
}

# Pages and fragments (GET) that take more than Lesetilgang; every other GET is for readers.
GET_TABLE: dict[str, Role] = {
    "/integrasjoner/ny": ADMIN,
    INTEGRATION + "/endre": ADMIN,
    INTEGRATION + "/slett": ADMIN,
    # An onboarding's return: it finishes only what this session started (Ny integrasjon,
    # Endre system: administrators; Oppdater klientliste: regnskapsførere).
    "/integrasjoner/tilkobling": ACCOUNTANT,
}
ADMIN_PREFIX = "/innstillinger"  # every settings page is the administrators'
PUBLIC_GETS = {
    "/",
    "/login",
    "/login/tofaktor",
    "/login/tofaktor/oppsett",
    "/healthz",
    "/readyz",
    "/metrics",
    "/static/{file_path:path}",
}
# Walked after the others: it deletes what they use.
LAST = (INTEGRATION + "/slett",)

EMAILS = {
    READER: "les@kontor-a.no",
    ACCOUNTANT: "regnskapsforer@kontor-a.no",
    ADMIN: "regnskap@kontor-a.no",  # conftest's user: an administrator
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    opt: dict[str, Any]


def web_routes(app: Litestar) -> list[Route]:
    """Each method of each route of the app, but the API's (and OPTIONS/HEAD, which
    Litestar answers itself)."""
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/api"):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                found.append(Route(method, route.path, dict(handler.opt)))
    return found


def expected_get(path: str) -> Role:
    if path.startswith(ADMIN_PREFIX):
        return ADMIN
    return GET_TABLE.get(path, READER)


@dataclass
class Office:
    clients: dict[Role, AsyncTestClient]
    app: Litestar
    ids: dict[str, int | str]


@pytest.fixture
async def office(settings: Settings, client: AsyncTestClient) -> AsyncIterator[Office]:
    """A reader, an accountant and an administrator of one office, each signed in to the app
    in demo mode (so its demo buttons are routes too), and an integration with clients."""
    from app import create_app

    await add_user_with_role(settings.database_url, EMAILS[READER], READER)
    await add_user_with_role(settings.database_url, EMAILS[ACCOUNTANT], ACCOUNTANT)
    integration_id = await create_integration(client)
    rows = await query(
        settings, f"select id from client where integration_id = {integration_id} order by id"
    )
    demo = dataclasses.replace(settings, demo=True)
    apps = {role: create_app(demo) for role in ROLES}
    clients: dict[Role, AsyncTestClient] = {}
    try:
        for role in ROLES:
            clients[role] = AsyncTestClient(apps[role])
            await clients[role].__aenter__()
            await login(clients[role], EMAILS[role])
        # A person of another office (the demo's): a real id, never this office's to change.
        stranger = await query(
            settings, f"select id from user_account where email = '{DEMO_USER[0]}'"
        )
        ids: dict[str, int | str] = {
            "user_id": stranger[0][0],
            "integration_id": integration_id,
            "client_id": rows[0][0],
            "switch": "send_data",
            "number": 1920,
            "system": "tripletex",
            "name": "tripletex",
        }
        yield Office(clients, apps[READER], ids)
    finally:
        for test_client in clients.values():
            await test_client.__aexit__(None, None, None)


def url_of(path: str, ids: dict[str, int | str]) -> str:
    """The route's path with real ids (1 or "x" for a parameter no test row has)."""

    def value(match: re.Match[str]) -> str:
        name, kind = match.group(1), match.group(2)
        return str(ids.get(name, 1 if kind == "int" else "x"))

    return re.sub(r"\{(\w+):(\w+)\}", value, path)


def test_every_route_of_the_web_app_says_who_may_use_it(settings: Settings) -> None:
    from app import create_app

    app = create_app(dataclasses.replace(settings, demo=True))
    seen = set()
    for route in web_routes(app):
        where = f"{route.method} {route.path}"
        role, public = route.opt.get("role"), route.opt.get("public", False)
        if route.method == "GET":
            if route.path in PUBLIC_GETS or public:
                assert role is None, f"{where} is public but declares {role}"
            else:
                assert role == expected_get(route.path), (
                    f"{where}: declares {role}, the table says {expected_get(route.path)} "
                    "(opt=READER/ACCOUNTANT/ADMINISTRATOR from web/guards.py)"
                )
            continue
        key = (route.method, route.path)
        seen.add(key)
        assert key in TABLE, (
            f"{where} changes something but is not in tests/test_roles.py's TABLE: "
            "give it a role (opt= from web/guards.py) and add it to the table"
        )
        if TABLE[key] is ANYONE:
            assert public and role is None, f'{where} should be marked opt={{"public": True}}'
        else:
            assert role == TABLE[key], f"{where}: declares {role}, the table says {TABLE[key]}"
    assert seen == set(TABLE), f"in the table but not in the app: {set(TABLE) - seen}"


async def refused(response: Any, role: Role, needed: Role, htmx_request: bool) -> None:
    assert response.status_code == 403, response.text
    sentence = f"Du har ikke tilgang til dette. Det krever rollen {needed.norwegian}."
    if htmx_request:
        # The sentence alone: static/app.js shows it where the person acted.
        assert response.text == sentence
        assert response.headers["content-type"].startswith("text/plain")
    else:
        assert "Du har ikke tilgang til dette" in response.text
        assert f"Det krever rollen {needed.norwegian}." in response.text
        assert EMAILS[role] in response.text  # the page has the top bar


def signed_out(response: Any) -> str:
    """Where the answer sends the browser (plain redirect or htmx's)."""
    return response.headers.get("location", "") + response.headers.get("hx-redirect", "")


async def test_each_role_may_change_exactly_what_the_table_says(office: Office) -> None:
    routes = [r for r in web_routes(office.app) if r.method != "GET"]
    missing = {(r.method, r.path) for r in routes} - set(TABLE)
    assert not missing, f"add these to TABLE with the role they take: {missing}"
    # The public ones (sign-in, sign-out: they may end the session) and the deletion last.
    routes.sort(key=lambda r: (TABLE[(r.method, r.path)] is ANYONE, r.path in LAST))
    assert routes, "no state-changing routes found"
    for route in routes:
        needed = TABLE[(route.method, route.path)]
        url = url_of(route.path, office.ids)
        for role in ROLES:
            http = office.clients[role]
            for htmx_request in (False, True):
                headers = htmx(http) if htmx_request else {"x-csrftoken": csrf(http)}
                kwargs: dict[str, Any] = {"headers": headers}
                if route.path.endswith("/saft-importer"):  # a file, as the raw body
                    headers["content-type"] = "application/xml"
                    kwargs["content"] = b"<AuditFile/>"
                    kwargs["params"] = {"filnavn": "saft.xml"}
                else:
                    kwargs["data"] = {"_csrf_token": csrf(http)}
                response = await http.request(route.method, url, follow_redirects=False, **kwargs)
                what = f"{route.method} {url} as {role} ({'htmx' if htmx_request else 'plain'})"
                if needed is not None and not role_allows(role, needed):
                    await refused(response, role, needed, htmx_request)
                else:
                    assert response.status_code != 403, f"{what}: {response.text[:300]}"
                    assert response.status_code < 500, f"{what}: {response.text[:300]}"
                    if needed is not ANYONE:  # still signed in: not sent to the login page
                        assert "/login" not in signed_out(response), what
                if needed is ANYONE:  # signed in again, whatever it did to the session
                    await login(http, EMAILS[role])


async def test_each_role_reads_exactly_the_pages_the_table_says(office: Office) -> None:
    routes = [
        r
        for r in web_routes(office.app)
        if r.method == "GET" and r.path not in PUBLIC_GETS and not r.opt.get("public")
    ]
    for route in routes:
        needed = expected_get(route.path)
        url = url_of(route.path, office.ids)
        for role in ROLES:
            http = office.clients[role]
            response = await http.get(url, follow_redirects=False)
            if role_allows(role, needed):
                assert response.status_code not in (403, 500), f"{url} as {role}"
                assert "/login" not in signed_out(response), f"{url} as {role}"
            else:
                await refused(response, role, needed, htmx_request=False)
                fragment = await http.get(url, headers=htmx(http), follow_redirects=False)
                await refused(fragment, role, needed, htmx_request=True)


async def test_settings_are_the_administrators(office: Office) -> None:
    for path in ("/innstillinger/api-nokler", "/innstillinger/varsler"):
        for role in (READER, ACCOUNTANT):
            page = await office.clients[role].get(path)
            assert page.status_code == 403
            assert 'href="/innstillinger"' not in page.text  # nor in the top bar
        assert (await office.clients[ADMIN].get(path)).status_code == 200
    for role in (READER, ACCOUNTANT):
        page = await office.clients[role].get("/integrasjoner")
        assert 'href="/innstillinger"' not in page.text


async def test_a_reader_sees_the_state_of_the_switches_but_no_controls(office: Office) -> None:
    base = f"/integrasjoner/{office.ids['integration_id']}"
    reader = (await office.clients[READER].get(base)).text
    assert 'role="switch"' not in reader
    assert '<span class="switch-state">Av</span>' in reader
    for control in ("Aktiver alle", "Oppdater klientliste", "Endre system", "Slett system"):
        assert control not in reader
    assert "Demo: gi tilgang" not in reader
    listing = (await office.clients[READER].get("/integrasjoner")).text
    assert "Ny integrasjon" not in listing

    accountant = (await office.clients[ACCOUNTANT].get(base)).text
    assert 'role="switch"' in accountant
    for control in ("Aktiver alle", "Oppdater klientliste", "Demo: gi tilgang"):
        assert control in accountant
    for control in ("Endre system", "Slett system"):
        assert control not in accountant
    assert "Ny integrasjon" not in (await office.clients[ACCOUNTANT].get("/integrasjoner")).text

    admin = (await office.clients[ADMIN].get(base)).text
    for control in ("Aktiver alle", "Oppdater klientliste", "Endre system", "Slett system"):
        assert control in admin
    assert "Ny integrasjon" in (await office.clients[ADMIN].get("/integrasjoner")).text


async def test_fragments_keep_the_readers_view(office: Office) -> None:
    """The table's htmx swaps (search, scrolling, a row's poll) render no control for a
    reader either, and a switch turned by an accountant comes back as a switch."""
    base = f"/integrasjoner/{office.ids['integration_id']}"
    client_id = office.ids["client_id"]
    reader = office.clients[READER]
    for url in (base + "?q=a", f"{base}/klienter?offset=0", f"{base}/klienter/{client_id}"):
        fragment = (await reader.get(url, headers=htmx(reader))).text
        assert 'role="switch"' not in fragment, url
        assert "Aktiver alle" not in fragment, url
    accountant = office.clients[ACCOUNTANT]
    row = await accountant.post(
        f"{base}/klienter/{client_id}/active", data={"on": "true"}, headers=htmx(accountant)
    )
    assert row.status_code == 200
    assert 'role="switch"' in row.text
