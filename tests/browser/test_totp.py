"""Tofaktor in Chromium on a phone-sized screen (390 px): set up under Min konto with the
code an authenticator app would show (pyotp, from the key on the page), signed out, signed
in again with the code; switched off at the end, so the demo login stays password-only for
the other browser tests."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible, log_in, screenshot

pytestmark = pytest.mark.browser


def fits_the_screen(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_set_up_sign_in_with_the_code_and_switch_off_on_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page)
    page.get_by_role("link", name="Min konto").click()
    expect(page.get_by_role("heading", name="Min konto")).to_be_visible()
    expect(page.get_by_role("heading", name="Tofaktor")).to_be_visible()
    page.get_by_role("button", name="Slå på tofaktor").click()

    expect(page.get_by_role("heading", name="Sett opp tofaktor")).to_be_visible()
    expect(page.get_by_label("Sekssifret kode")).to_be_focused()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    assert len(secret) == 32
    link = page.get_by_role("link", name="åpne i autentiseringsappen")
    assert link.get_attribute("href") == pyotp.TOTP(secret).provisioning_uri(
        name="demo@example.no", issuer_name="ERP-integrasjon"
    )
    fits_the_screen(page)
    screenshot(page, "tofaktor-oppsett-390")

    totp = pyotp.TOTP(secret)
    # The step before now's: now's code stays unused for the sign-in below.
    page.get_by_label("Sekssifret kode").fill(totp.at(time.time() - 30))
    page.get_by_role("button", name="Slå på tofaktor").click()
    expect(page.get_by_role("heading", name="Gjenopprettingskoder")).to_be_visible()
    expect(page.locator("ol.recovery-codes li")).to_have_count(10)
    fits_the_screen(page)
    screenshot(page, "tofaktor-gjenopprettingskoder-390")
    page.get_by_role("link", name="Jeg har tatt vare på kodene").click()
    expect(page.get_by_text("Tofaktor er på")).to_be_visible()
    assert secret not in page.content()
    fits_the_screen(page)
    screenshot(page, "min-konto-tofaktor-390")

    page.get_by_role("button", name="Logg ut").click()
    page.get_by_label("E-post").fill("demo@example.no")
    page.get_by_label("Passord").fill("demo")
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("heading", name="Tofaktor")).to_be_visible()
    code = page.get_by_label("Kode", exact=True)
    expect(code).to_be_focused()
    code.fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("alert")).to_have_text("Feil kode. Prøv igjen.")
    expect(code).to_have_attribute("aria-invalid", "true")
    fits_the_screen(page)
    screenshot(page, "tofaktor-innlogging-390")

    code.fill(totp.now())
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("heading", name="Integrasjoner")).to_be_visible()

    page.get_by_role("link", name="Min konto").click()
    page.get_by_label("Kode fra appen eller passordet ditt").fill("demo")
    page.get_by_role("button", name="Slå av tofaktor").click()
    expect(page.get_by_role("status")).to_have_text("Tofaktor er slått av.")
    expect(page.get_by_role("button", name="Slå på tofaktor")).to_be_visible()
    fits_the_screen(page)
    assert_accessible(page)
