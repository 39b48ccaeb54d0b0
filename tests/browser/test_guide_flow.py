"""The setup guide's flow, end to end, in Chromium."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in, new_integration, screenshot, settled

pytestmark = pytest.mark.browser

DESCRIPTION_LABEL = "Beskrivelse (Ikke fyll inn personopplysninger i feltet)"


def counts(page: Page) -> str:
    return " ".join(page.locator("#client-counts").inner_text().split())


def test_login_with_wrong_password_then_log_out(page: Page) -> None:
    page.goto("/integrasjoner")
    expect(page).to_have_url(re.compile("/login$"))
    expect(page.get_by_text("demo@example.no")).to_be_visible()  # the demo hint
    page.get_by_label("E-post").fill("demo@example.no")
    page.get_by_label("Passord").fill("feil")
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("alert")).to_have_text("Feil e-post eller passord.")
    page.get_by_label("Passord").fill("demo")
    page.get_by_role("button", name="Logg inn").click()
    page.get_by_role("button", name="Logg ut").click()
    expect(page.get_by_role("button", name="Logg inn")).to_be_visible()


def test_wrong_key_and_personal_data_are_refused_next_to_the_field(page: Page) -> None:
    log_in(page)
    page.get_by_role("link", name="Ny integrasjon").click()
    expect(page.get_by_text("Webbaserte regnskapssystem")).to_be_visible()
    expect(page.get_by_role("link", name="Last ned guide for Tripletex")).to_be_visible()
    page.get_by_label("Egen brukernøkkel").fill("feil-nokkel")
    page.get_by_label(DESCRIPTION_LABEL).fill("Avvist")
    page.get_by_role("button", name="Opprett").click()
    expect(page.locator("#key-error")).to_contain_text("Tripletex godtok ikke brukernøkkelen")
    settled(page)
    page.get_by_label("Egen brukernøkkel").fill("demo-regnskapskontor")
    page.get_by_label(DESCRIPTION_LABEL).fill("ola@example.no")
    page.get_by_role("button", name="Opprett").click()
    expect(page.locator("#description-error")).to_contain_text("e-postadresse")
    screenshot(page, "ny-integrasjon-feil")
    page.get_by_role("link", name="Avbryt").click()
    expect(page.get_by_text("Tripletex - Avvist")).to_have_count(0)


def test_guide_flow_search_sort_switches_and_bulk(page: Page) -> None:
    log_in(page)
    new_integration(page, "demo-regnskapskontor", "Flyt")
    expect(page.get_by_role("heading", name="Tripletex - Flyt")).to_be_visible()
    for action in ("Oppdater klientliste", "Aktiver alle", "Deaktiver alle"):
        expect(page.get_by_role("button", name=action, exact=True)).to_be_visible()
    for action in ("Endre system", "Slett system"):
        expect(page.get_by_role("link", name=action)).to_be_visible()
    inactive = int(re.search(r"Inaktive klienter: (\d+)", counts(page)).group(1))
    assert inactive >= 40
    screenshot(page, "klienter")

    # Active search keeps the query in the URL.
    page.get_by_placeholder("Søk...").fill("fjord")
    expect(page).to_have_url(re.compile(r"q=fjord"))
    rows = page.locator("tr[id^=client-]")
    expect(rows.first).to_be_visible()
    for name in rows.locator("td.name").all_inner_texts():
        assert "fjord" in name.casefold()
    page.get_by_placeholder("Søk...").fill("")
    expect(page).not_to_have_url(re.compile(r"q=fjord"))

    # Sorting by name both ways.
    first_ascending = rows.first.locator("td.name").inner_text()
    page.get_by_role("link", name=re.compile("^NAVN")).click()
    expect(page).to_have_url(re.compile(r"sort=-navn"))
    expect(rows.first.locator("td.name")).not_to_have_text(first_ascending)
    page.get_by_role("link", name=re.compile("^NAVN")).click()
    expect(rows.first.locator("td.name")).to_have_text(first_ascending)

    # Each switch saves at once; the AKTIV switch updates the counts.
    row = rows.first
    for column in ("SEND DATA", "FULL SYNKRONISERING", "SLETT KONTOER"):
        switch = row.get_by_role("switch", name=re.compile(column))
        before = switch.get_attribute("aria-checked")
        switch.click()
        expect(row.get_by_role("switch", name=re.compile(column))).not_to_have_attribute(
            "aria-checked", before
        )
    expect(row.get_by_role("switch", name=re.compile("AKTIV"))).to_have_text("Aktiver livesync")
    row.get_by_role("switch", name=re.compile("AKTIV")).click()
    expect(page.locator("#client-counts")).to_contain_text("Aktive klienter: 1")
    expect(page.locator("#client-counts")).to_contain_text(f"Inaktive klienter: {inactive - 1}")
    screenshot(page, "bryter")
    page.reload()
    expect(page.locator("#client-counts")).to_contain_text("Aktive klienter: 1")
    expect(rows.first.get_by_role("switch", name=re.compile("AKTIV"))).to_have_attribute(
        "aria-checked", "true"
    )

    # Bulk actions ask first, naming how many clients they act on.
    asked: list[str] = []
    page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Aktiver alle", exact=True).click()
    expect(page.locator("#client-counts")).to_contain_text("Inaktive klienter: 0")
    assert asked and asked[-1].startswith("Aktivere alle de "), asked
    assert asked[-1].endswith("De som alt er aktive, endres ikke."), asked
    page.get_by_role("button", name="Deaktiver alle").click()
    expect(page.locator("#client-counts")).to_contain_text("Aktive klienter: 0")


def test_new_client_appears_after_refresh_and_system_can_be_changed(page: Page) -> None:
    log_in(page)
    new_integration(page, "demo-regnskapskontor", "Oppdatering")
    before = page.locator("#client-counts").inner_text()
    page.get_by_role("button", name="Demo: gi tilgang til en ny klient").click()
    granted = page.locator("#demo-notice strong").first.inner_text()
    page.get_by_role("button", name="Oppdater klientliste").click()
    expect(page.get_by_role("status").filter(has_text="Klientlisten er oppdatert")).to_contain_text(
        "1 ny klient"
    )
    assert page.locator("#client-counts").inner_text() != before
    page.get_by_placeholder("Søk...").fill(granted[:12])
    new_row = page.locator("tr", has_text=granted)
    expect(new_row.locator(".badge.new")).to_have_text("Ny")
    screenshot(page, "ny-klient")

    page.get_by_role("link", name="Endre system").click()
    page.get_by_label("Egen brukernøkkel").fill("demo-regnskapskontor")
    page.get_by_label(DESCRIPTION_LABEL).fill("Endret")
    page.get_by_role("button", name="Lagre").click()
    expect(page.get_by_role("heading", name="Tripletex - Endret")).to_be_visible()


def test_own_company_key_and_delete(page: Page) -> None:
    log_in(page)
    new_integration(page, "demo-eget-selskap", "Eget selskap")
    expect(page.locator("tr[id^=client-]")).to_have_count(1)
    expect(page.locator("#client-counts")).to_contain_text("Inaktive klienter: 1")
    page.get_by_role("link", name="Slett system").click()
    expect(page.get_by_text("Vil du slette")).to_be_visible()
    page.get_by_role("button", name="Ja, slett integrasjonen").click()
    expect(page.get_by_role("heading", name="Integrasjoner")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(
        "«Tripletex - Eget selskap» er slettet, med klientene og innstillingene deres."
    )
    expect(page.get_by_role("link", name="Tripletex - Eget selskap")).to_have_count(0)


def test_setup_guide_is_a_readable_page(page: Page) -> None:
    log_in(page)
    page.goto("/guide/tripletex")
    expect(page.get_by_role("heading", name="Tripletex: oppsett av integrasjonen")).to_be_visible()
    expect(page.get_by_text("Regnskapsførers tilgang").first).to_be_visible()
