"""Innstillinger → Brukere in Chromium: an administrator invites a colleague, copies the
link, and the colleague opens it in a browser of their own, chooses a password and lands
signed in as Regnskapsfører."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import AXE, assert_accessible, log_in, screenshot

pytestmark = pytest.mark.browser

COLLEAGUE = "kari.nordmann@example.no"
PASSWORD = "Kari sitt lange passord 2026"


def test_an_invited_colleague_joins_through_the_copied_link(
    page: Page, browser: Browser, server: str
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    log_in(page)
    page.get_by_role("link", name="Innstillinger").click()
    page.get_by_role("link", name="Brukere").click()
    expect(page.get_by_role("heading", name="Inviter en kollega")).to_be_visible()
    page.get_by_label("E-postadresse").fill(COLLEAGUE)
    page.get_by_label("Rolle", exact=True).select_option(label="Regnskapsfører")
    page.get_by_role("button", name="Inviter").click()
    shown = page.get_by_label("Invitasjonslenken")
    expect(shown).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=COLLEAGUE)).to_contain_text("Invitert – venter")
    page.get_by_role("button", name="Kopier lenken").click()
    expect(page.get_by_role("button", name="Kopiert")).to_be_visible()
    link = page.evaluate("navigator.clipboard.readText()")
    assert link == shown.input_value() and "/invitasjon/" in link
    assert_accessible(page)

    colleague = browser.new_context(base_url=server, locale="nb-NO")
    colleague.add_init_script(script=AXE.read_text(encoding="utf-8"))
    try:
        theirs = colleague.new_page()
        theirs.goto(link)
        expect(
            theirs.get_by_role("heading", name="Bli med i Regnskapshuset Demo AS")
        ).to_be_visible()
        expect(theirs.get_by_text("som Regnskapsfører")).to_be_visible()
        expect(theirs.get_by_label("Navn")).to_be_focused()
        assert_accessible(theirs)
        theirs.get_by_label("Navn").fill("Kari Nordmann")
        theirs.get_by_label("Velg passord").fill(PASSWORD)
        theirs.get_by_label("Gjenta passordet").fill(PASSWORD)
        theirs.get_by_role("button", name="Bli med").click()
        expect(theirs.get_by_role("heading", name="Integrasjoner")).to_be_visible()
        expect(theirs.locator(".topbar")).to_contain_text(COLLEAGUE)
        # A Regnskapsfører: no Innstillinger, and the administrators' page says why not.
        expect(theirs.get_by_role("link", name="Innstillinger")).to_have_count(0)
        theirs.goto("/innstillinger/brukere")
        expect(theirs.get_by_text("Det krever rollen Administrator")).to_be_visible()
        # The link worked once.
        theirs.goto(link)
        expect(theirs.get_by_role("alert")).to_contain_text("allerede tatt i bruk")
        assert_accessible(theirs)
    finally:
        colleague.close()

    page.reload()
    row = page.get_by_role("row").filter(has_text=COLLEAGUE)
    expect(row).to_contain_text("Regnskapsfører")
    expect(row).to_contain_text("Aktiv")
    expect(page.get_by_label("Invitasjonslenken")).to_have_count(0)  # shown once


def test_the_people_page_on_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page)
    page.goto("/innstillinger/brukere")
    page.get_by_label("E-postadresse").fill("ola.telefon@example.no")
    page.get_by_role("button", name="Inviter").click()
    expect(page.get_by_label("Invitasjonslenken")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "brukere-390")

    # Endre rolle in place, and the last administrator kept.
    mine = page.get_by_role("row").filter(has_text="demo@example.no")
    mine.get_by_role("link", name="Endre rolle").click()
    select = page.get_by_role("combobox", name="Rolle for demo@example.no")
    expect(select).to_be_focused()
    select.select_option(label="Lesetilgang")
    page.get_by_role("button", name="Lagre").click()
    expect(page.get_by_role("alert")).to_contain_text("siste aktive administratoren")
    page.get_by_role("link", name="Avbryt").click()
    expect(page.get_by_role("row").filter(has_text="demo@example.no")).to_contain_text(
        "Administrator"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "brukere-390-endre")
