"""Ny integrasjon and Endre system in Chromium: a refused form keeps what was typed and
puts the keyboard on the field in error; the same key twice is stopped with a link; a key
that reaches fewer clients is asked about before it is saved."""

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import log_in, screenshot

pytestmark = pytest.mark.browser

KEY_LABEL = "Egen brukernøkkel"
DESCRIPTION_LABEL = "Beskrivelse (Ikke fyll inn personopplysninger i feltet)"


def counts(page: Page) -> str:
    return " ".join(page.locator("#client-counts").inner_text().split())


def test_a_refused_form_keeps_the_key_and_focuses_the_field_in_error(page: Page) -> None:
    log_in(page)
    page.goto("/integrasjoner/ny")
    page.get_by_label(KEY_LABEL).fill("demo-regnskapskontor")
    page.get_by_label(DESCRIPTION_LABEL).fill("Kari Nordmann 912 34 567")
    page.get_by_role("button", name="Opprett").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Beskrivelsen ser ut til å inneholde et telefonnummer. "
        "Ikke fyll inn personopplysninger i feltet."
    )
    expect(page.get_by_label(DESCRIPTION_LABEL)).to_be_focused()
    expect(page.get_by_label(KEY_LABEL)).to_have_value("demo-regnskapskontor")
    screenshot(page, "ny-integrasjon-feil-i-beskrivelsen")

    # The key in error next: the focus moves there, what was typed stays.
    page.get_by_label(DESCRIPTION_LABEL).fill("Fokus")
    page.get_by_label(KEY_LABEL).fill("feil-nokkel")
    page.get_by_label(DESCRIPTION_LABEL).press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Tripletex godtok ikke brukernøkkelen")
    expect(page.get_by_label(KEY_LABEL)).to_be_focused()
    expect(page.get_by_label(KEY_LABEL)).to_have_value("feil-nokkel")
    expect(page.get_by_label(DESCRIPTION_LABEL)).to_have_value("Fokus")


def test_the_same_key_twice_and_a_key_that_reaches_fewer_clients(page: Page) -> None:
    log_in(page)
    page.goto("/integrasjoner/ny")
    page.get_by_label(KEY_LABEL).fill("demo-regnskapskontor")
    page.get_by_label(DESCRIPTION_LABEL).fill("Nøkkelbytte")
    page.get_by_role("button", name="Opprett").click()
    # Other tests in this server may have used the key already: say yes to a second one.
    created = page.get_by_role("heading", name="Tripletex - Nøkkelbytte")
    expect(created.or_(page.locator("#same-key"))).to_be_visible()
    if not created.is_visible():
        page.get_by_role("button", name="Opprett likevel").click()
    expect(created).to_be_visible()
    integration_url = page.url
    before = counts(page)

    # The same key once more: stopped, with the way to the integration that has it.
    page.goto("/integrasjoner/ny")
    page.get_by_label(KEY_LABEL).fill("demo-regnskapskontor")
    page.get_by_label(DESCRIPTION_LABEL).fill("Nøkkelbytte igjen")
    page.get_by_role("button", name="Opprett").click()
    warning = page.locator("#same-key")
    expect(warning).to_contain_text("Denne nøkkelen er allerede brukt i")
    expect(warning).to_be_focused()
    expect(page.get_by_label(KEY_LABEL)).to_have_value("demo-regnskapskontor")
    expect(page.get_by_role("button", name="Opprett likevel")).to_be_visible()
    screenshot(page, "ny-integrasjon-samme-nokkel")
    # The one that has the key: this test's, or an earlier test's in this server.
    link = warning.get_by_role("link", name=re.compile(r"^Tripletex - "))
    name = link.inner_text()
    link.click()
    expect(page).to_have_url(re.compile(r"/integrasjoner/\d+$"))
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()

    # Endre system with the own-company key: asked first, with how many it reaches.
    page.goto(integration_url)
    page.get_by_role("link", name="Endre system").click()
    page.get_by_label(KEY_LABEL).fill("demo-eget-selskap")
    page.get_by_role("button", name="Lagre").click()
    question = page.locator("#key-reach")
    expect(question).to_contain_text(re.compile(r"Denne nøkkelen når 0 av \d+ klienter\."))
    expect(question).to_be_focused()
    screenshot(page, "endre-system-bekreft-nokkel")
    page.get_by_role("button", name="Lagre likevel").click()
    expect(page.get_by_role("status").filter(has_text="Endringene er lagret.")).to_be_visible()
    expect(page.locator("tr[id^=client-]", has_text="Ingen tilgang").first).to_be_visible()

    # The right key back: no question, and the clients are what they were.
    page.get_by_role("link", name="Endre system").click()
    page.get_by_label(KEY_LABEL).fill("demo-regnskapskontor")
    page.get_by_role("button", name="Lagre").click()
    expect(page.get_by_role("status").filter(has_text="Endringene er lagret.")).to_be_visible()
    assert counts(page) == before
