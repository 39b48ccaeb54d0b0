"""PowerOffice Go in Chromium: connected by onboarding from Ny integrasjon, the demo's
simulator page where the user ticks clients and approves or cancels, the way back to our
pages, and Oppdater klientliste bringing in the clients left out the first time; at desktop
and phone width, checked by axe."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, Page, expect

from simulators.poweroffice.generate import CLIENT_NAMES
from tests.browser.conftest import log_in, new_integration, screenshot

pytestmark = pytest.mark.browser

DESCRIPTION_LABEL = "Beskrivelse (Ikke fyll inn personopplysninger i feltet)"
APPROVAL_PAGE = re.compile(r"/poweroffice/ApiAuthV2\?token=")
INTEGRATION_PAGE = re.compile(r"/integrasjoner/\d+$")
REFUSED = "Tilkoblingen ble avbrutt i PowerOffice Go. Ingenting er lagret."
# Approved first: names with æøå, `&` and quotes, which break naive HTML and URL handling.
FIRST = {
    "Smørås & Sønner AS",
    "Bjørk & Bråten Advokatfirma DA",
    "Ærlig Håndverk AS",
    '"Bølgen" Surfeklubb',
    "Østbye Eiendom AS",
}
REST = set(CLIENT_NAMES) - FIRST


def start_onboarding(page: Page, description: str) -> None:
    """Ny integrasjon with PowerOffice Go chosen, up to the simulator's approval page."""
    choose_poweroffice(page, description)
    page.get_by_role("button", name="Koble til PowerOffice Go").click()
    expect(page).to_have_url(APPROVAL_PAGE)


def choose_poweroffice(page: Page, description: str) -> None:
    page.goto("/integrasjoner")
    page.get_by_role("link", name="Ny integrasjon").click()
    connect = page.get_by_role("button", name="Koble til PowerOffice Go")
    expect(connect).to_be_hidden()
    page.get_by_role("radio", name="PowerOffice Go").check()
    expect(connect).to_be_visible()
    # No key to type: the user logs in to PowerOffice Go instead.
    expect(page.get_by_label("Egen brukernøkkel")).to_be_hidden()
    expect(page.get_by_role("button", name="Opprett")).to_be_hidden()
    expect(page.get_by_role("link", name="Last ned guide for PowerOffice Go")).to_be_visible()
    page.get_by_label(DESCRIPTION_LABEL).fill(description)


def offered(page: Page) -> dict[str, Locator]:
    """The approval page's clients by name, each with its checkbox."""
    items = page.get_by_role("listitem")
    expect(items).to_have_count(len(CLIENT_NAMES))
    boxes = {}
    for item in items.all():
        name = re.sub(r"\s*\(\d+\)$", "", item.inner_text().strip())
        boxes[name] = item.get_by_role("checkbox")
    return boxes


def approve_only(page: Page, names: set[str]) -> None:
    """Tick exactly `names` on the approval page and approve."""
    boxes = offered(page)
    assert set(boxes) == set(CLIENT_NAMES)
    for name, box in boxes.items():
        box.set_checked(name in names)
    page.get_by_role("button", name="Godkjenn").click()
    expect(page).to_have_url(INTEGRATION_PAGE)


def table_names(page: Page) -> list[str]:
    return page.locator("tr[id^=client-] td.name a.client-link").all_inner_texts()


def integration_card(page: Page, name: str) -> Locator:
    """The integration's entry on /integrasjoner, found by its name."""
    page.goto("/integrasjoner")
    return page.locator("ul.integrations > li").filter(
        has=page.get_by_role("link", name=name, exact=True)
    )


def assert_fits_phone(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page scrolls sideways at 390 px ({width} px)"


def test_cancelling_in_poweroffice_stores_nothing(page: Page) -> None:
    log_in(page)
    start_onboarding(page, "Avbrutt PO")
    expect(page.get_by_role("heading", name="PowerOffice Go (simulator)")).to_be_visible()
    page.get_by_role("button", name="Avbryt").click()

    expect(page).to_have_url(re.compile(r"/integrasjoner/tilkobling\?"))
    expect(page.get_by_role("alert")).to_have_text(REFUSED)
    # Back on Ny integrasjon with the choice and the description kept, ready to try again.
    expect(page.get_by_role("radio", name="PowerOffice Go")).to_be_checked()
    expect(page.get_by_label(DESCRIPTION_LABEL)).to_have_value("Avbrutt PO")
    expect(page.get_by_role("button", name="Koble til PowerOffice Go")).to_be_visible()

    page.goto("/integrasjoner")
    expect(page.get_by_role("heading", name="Integrasjoner")).to_be_visible()
    expect(page.get_by_text("PowerOffice Go - Avbrutt PO")).to_have_count(0)


def test_approved_clients_come_in_and_the_rest_follow_on_refresh(page: Page) -> None:
    log_in(page)
    start_onboarding(page, "Godkjent PO")
    approve_only(page, FIRST)

    expect(page.get_by_role("heading", name="PowerOffice Go - Godkjent PO")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(
        "5 klienter er koblet til fra PowerOffice Go. Slå på AKTIV for klientene som skal "
        "synkroniseres (eller Aktiver alle)."
    )
    expect(page.locator("#client-counts")).to_contain_text("Aktive klienter: 0")
    expect(page.locator("#client-counts")).to_contain_text("Inaktive klienter: 5")
    expect(page.get_by_text("Aktive klienter oppdateres hvert 10. minutt")).to_be_visible()
    expect(page.locator("tr[id^=client-]")).to_have_count(5)
    assert sorted(table_names(page)) == sorted(FIRST)

    # Search narrows the table, æøå and all.
    rows = page.locator("tr[id^=client-]")
    page.get_by_placeholder("Søk...").fill("smørås")
    expect(page).to_have_url(re.compile(r"q=sm%C3%B8r%C3%A5s"))
    expect(rows).to_have_count(1)
    assert table_names(page) == ["Smørås & Sønner AS"]

    # The AKTIV switch: counted at once, then synced with the key PowerOffice gave.
    row = rows.filter(has_text="Smørås & Sønner AS")
    row.get_by_role("switch", name=re.compile("AKTIV")).click()
    expect(row.get_by_role("switch", name=re.compile("AKTIV"))).to_have_attribute(
        "aria-checked", "true"
    )
    expect(page.locator("#client-counts")).to_contain_text("Aktive klienter: 1")
    expect(page.locator("#client-counts")).to_contain_text("Inaktive klienter: 4")
    expect(row.locator(".sync-status.ok")).to_be_visible(timeout=45_000)
    page.get_by_placeholder("Søk...").fill("")
    expect(rows).to_have_count(5)

    # Oppdater klientliste goes through PowerOffice Go again: the rest come in as new.
    page.get_by_role("button", name="Oppdater klientliste").click()
    expect(page).to_have_url(APPROVAL_PAGE)
    approve_only(page, REST)
    expect(page.get_by_role("status")).to_contain_text(
        "Klientlisten er oppdatert fra PowerOffice Go: 15 "
    )
    expect(page.get_by_role("status")).to_contain_text("nye")
    expect(page.get_by_role("status")).not_to_contain_text("fornyet")
    expect(page.locator("#client-counts")).to_contain_text("Aktive klienter: 1")
    expect(page.locator("#client-counts")).to_contain_text("Inaktive klienter: 19")
    expect(rows).to_have_count(20)
    assert sorted(table_names(page)) == sorted(CLIENT_NAMES)
    page.get_by_label("Filtrer på status").select_option(label="Ny")
    expect(page).to_have_url(re.compile(r"status=ny"))
    expect(rows).to_have_count(15)
    assert sorted(table_names(page)) == sorted(REST)

    # The list of integrations, a Tripletex one beside it.
    new_integration(page, "demo-regnskapskontor", "Ved siden av PO")
    card = integration_card(page, "PowerOffice Go - Godkjent PO")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("Aktive klienter: 1")
    expect(card).to_contain_text("Inaktive klienter: 19")
    expect(card).to_contain_text("Nye: 15")
    expect(integration_card(page, "Tripletex - Ved siden av PO")).to_have_count(1)
    card.get_by_role("link", name="PowerOffice Go - Godkjent PO").click()
    expect(page.get_by_role("heading", name="PowerOffice Go - Godkjent PO")).to_be_visible()


def test_onboarding_pages_are_accessible_at_desktop_and_phone_width(page: Page) -> None:
    log_in(page)
    for width, height, suffix in ((1400, 900, ""), (390, 844, "-390")):
        page.set_viewport_size({"width": width, "height": height})
        description = f"Skjermbredde {width}"
        choose_poweroffice(page, description)
        screenshot(page, f"poweroffice-01-ny-integrasjon{suffix}")
        if width == 390:
            assert_fits_phone(page)

        page.get_by_role("button", name="Koble til PowerOffice Go").click()
        expect(page).to_have_url(APPROVAL_PAGE)
        page.get_by_role("button", name="Avbryt").click()
        expect(page.locator("#onboarding-error")).to_have_text(REFUSED)
        screenshot(page, f"poweroffice-02-avbrutt{suffix}")
        if width == 390:
            assert_fits_phone(page)

        page.get_by_role("button", name="Koble til PowerOffice Go").click()
        expect(page).to_have_url(APPROVAL_PAGE)
        approve_only(page, FIRST)
        expect(page.get_by_role("status")).to_contain_text("5 klienter er koblet til")
        screenshot(page, f"poweroffice-03-integrasjon{suffix}")
        if width == 390:
            assert_fits_phone(page)

        # The guide the form links to.
        page.goto("/integrasjoner/ny")
        guide = page.get_by_role("link", name="Last ned guide for PowerOffice Go")
        href = guide.get_attribute("href")
        assert href == "/guide/poweroffice"
        page.goto(href)
        expect(
            page.get_by_role("heading", name="PowerOffice Go: oppsett av integrasjonen")
        ).to_be_visible()
        screenshot(page, f"poweroffice-04-guide{suffix}")
        if width == 390:
            assert_fits_phone(page)
