"""Endre passord in Chromium, on a phone-sized screen (390 px)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import assert_accessible, log_in, screenshot

pytestmark = pytest.mark.browser


def test_change_password_from_the_header_on_a_phone(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page)
    page.get_by_role("link", name="Min konto").click()
    expect(page.get_by_role("heading", name="Endre passord")).to_be_visible()
    expect(page.get_by_label("Nåværende passord")).to_be_focused()
    assert_accessible(page)

    page.get_by_label("Nåværende passord").fill("demo")
    page.get_by_label("Nytt passord", exact=True).fill("kort")
    page.get_by_label("Gjenta nytt passord").fill("kort")
    page.get_by_role("button", name="Endre passord").click()
    # The policy refuses before the current password is checked: the demo login stays as is.
    expect(page.get_by_role("alert")).to_have_text("Passordet må ha minst 12 tegn.")
    expect(page.get_by_label("Nytt passord", exact=True)).to_be_focused()
    expect(page.get_by_label("Nytt passord", exact=True)).to_have_attribute("aria-invalid", "true")
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert_accessible(page)
    screenshot(page, "endre-passord-390")
