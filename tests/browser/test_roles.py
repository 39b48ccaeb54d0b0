"""Roles in Chromium: a Lesetilgang colleague reads the clients without a switch or a bulk
button and cannot reach Innstillinger; a Regnskapsfører turns AKTIV on but adds no
integration, and told mid-page that the role was lowered, sees why the switch did nothing."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Page, expect

from models.office import Role
from simulators.tripletex import seed_demo
from tests import databases
from tests.browser.conftest import ROOT, log_in, new_integration, screenshot
from tests.conftest import PASSWORD, free_port
from tests.login_support import add_user_with_role, set_role
from tests.processes import serve
from web.plugins import DEMO_USER

pytestmark = pytest.mark.browser

T = TypeVar("T")
READER_EMAIL = "les@regnskapshuset.no"
ACCOUNTANT_EMAIL = "regnskapsforer@regnskapshuset.no"


def run(work: Coroutine[Any, Any, T]) -> T:
    """Database work from a test: in a thread of its own, as Playwright's sync API keeps an
    event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo server's database, known here so the test can add colleagues to its office."""
    if databases.ON_POSTGRES:
        url = run(databases.create_postgres_database("roles"))
        yield url
        run(databases.drop_postgres_database(url))
    else:
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('roles-db') / 'erp.sqlite3'}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[str]:
    """The demo as `make run` serves it (as tests/browser/conftest.py's server), with a
    reader and an accountant in the demo office besides its administrator."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("roles-demo")
    env = {
        **os.environ,
        "PORT": str(port),
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database,
        "OUTBOUND_ALLOW_PRIVATE": "true",
    }
    log = data_dir / "server.log"
    process, url = serve([sys.executable, "app.py", "run", "--demo"], cwd=ROOT, env=env, log=log)
    try:
        office = DEMO_USER[2]
        run(add_user_with_role(database, READER_EMAIL, Role.READER, office))
        run(add_user_with_role(database, ACCOUNTANT_EMAIL, Role.ACCOUNTANT, office))
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "demo-regnskapskontor" not in Path(log).read_text()


def log_in_as(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("E-post").fill(email)
    page.get_by_label("Passord").fill(PASSWORD)
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("heading", name="Integrasjoner")).to_be_visible()


def a_client_with_access() -> tuple[str, str]:
    world = seed_demo()
    company = next(
        c for c in world.clients_of("demo-regnskapskontor") if c.id != world.no_api_access_client_id
    )
    return company.name, company.organization_number


@pytest.fixture(scope="module")
def integration_url(browser, server: str) -> str:  # type: ignore[no-untyped-def]
    """The demo administrator's integration, which the colleagues then open."""
    context = browser.new_context(base_url=server, locale="nb-NO")
    page = context.new_page()
    log_in(page)
    new_integration(page, "demo-regnskapskontor", "Roller")
    url = page.url
    context.close()
    return url


def test_a_reader_sees_the_clients_but_no_switch_and_no_settings(
    page: Page, integration_url: str
) -> None:
    log_in_as(page, READER_EMAIL)
    expect(page.get_by_role("link", name="Ny integrasjon")).to_have_count(0)
    expect(page.get_by_role("link", name="Innstillinger")).to_have_count(0)
    page.goto(integration_url)
    rows = page.locator("tr[id^=client-]")
    expect(rows.first).to_be_visible()
    expect(page.get_by_role("switch")).to_have_count(0)
    # Each switch as a word: SEND DATA on, AKTIV (the last column) off for a new client.
    expect(rows.first.locator(".switch-state").first).to_have_text("På")
    expect(rows.first.locator(".switch-state").last).to_have_text("Av")
    for button in ("Aktiver alle", "Deaktiver alle", "Oppdater klientliste"):
        expect(page.get_by_role("button", name=button)).to_have_count(0)
    for link in ("Endre system", "Slett system"):
        expect(page.get_by_role("link", name=link)).to_have_count(0)
    # A search swaps the table through htmx: still no controls in it.
    name, org_number = a_client_with_access()
    page.get_by_placeholder("Søk...").fill(org_number)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(name)
    expect(page.get_by_role("switch")).to_have_count(0)
    screenshot(page, "roller-lesetilgang")

    # Typed in by hand, Innstillinger says who may use it, under the same top bar.
    page.goto("/innstillinger/api-nokler")
    expect(page.get_by_role("heading", name="Du har ikke tilgang til dette")).to_be_visible()
    expect(page.get_by_text("Det krever rollen Administrator.")).to_be_visible()
    expect(page.get_by_role("link", name="Min konto")).to_be_visible()


def test_an_accountant_turns_a_client_on_but_adds_no_integration(
    page: Page, integration_url: str, database: str
) -> None:
    log_in_as(page, ACCOUNTANT_EMAIL)
    expect(page.get_by_role("link", name="Ny integrasjon")).to_have_count(0)
    expect(page.get_by_role("link", name="Innstillinger")).to_have_count(0)
    page.goto(integration_url)
    expect(page.get_by_role("link", name="Endre system")).to_have_count(0)
    expect(page.get_by_role("link", name="Slett system")).to_have_count(0)
    expect(page.get_by_role("button", name="Oppdater klientliste")).to_be_visible()
    name, org_number = a_client_with_access()
    page.get_by_placeholder("Søk...").fill(org_number)
    rows = page.locator("tr[id^=client-]")
    expect(rows).to_have_count(1)
    row = rows.filter(has_text=name)
    switch = row.get_by_role("switch", name=re.compile("AKTIV"))
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    screenshot(page, "roller-regnskapsforer")

    # An administrator lowers the role while the page is open: the next switch is refused
    # by the server, and the page says why instead of looking saved.
    run(set_role(database, ACCOUNTANT_EMAIL, Role.READER))
    send_data = row.get_by_role("switch", name=re.compile("SEND DATA"))
    before = send_data.get_attribute("aria-checked")
    send_data.click()
    toast = page.locator("#request-error")
    expect(toast).to_be_visible()
    expect(toast).to_have_text("Du har ikke tilgang til dette. Det krever rollen Regnskapsfører.")
    expect(send_data).to_have_attribute("aria-checked", before or "")
    run(set_role(database, ACCOUNTANT_EMAIL, Role.ACCOUNTANT))
