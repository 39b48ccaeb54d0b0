"""Innstillinger → Logg in Chromium: who turned this client on, and when."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from simulators.tripletex import seed_demo
from tests.browser.conftest import log_in, new_integration, screenshot

pytestmark = pytest.mark.browser


def test_the_log_shows_a_switch_change_filtered_by_kind_on_a_phone(page: Page) -> None:
    world = seed_demo()
    company = next(
        c for c in world.clients_of("demo-regnskapskontor") if c.id != world.no_api_access_client_id
    )
    log_in(page)
    new_integration(page, "demo-regnskapskontor", "Logg")
    page.get_by_placeholder("Søk...").fill(company.organization_number)
    expect(page.locator("tr[id^=client-]")).to_have_count(1)
    row = page.locator("tr[id^=client-]", has_text=company.name)
    switch = row.get_by_role("switch", name=re.compile("AKTIV"))
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")

    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("link", name="Innstillinger").click()
    page.get_by_role("navigation", name="Innstillinger").get_by_role(
        "link", name="Logg", exact=True
    ).click()
    expect(page.get_by_role("heading", name="Logg", exact=True)).to_be_visible()
    log = page.locator("#audit-log")
    expect(log.locator("tr.audit-event").first).to_be_visible()

    page.evaluate("window.__notReloaded = true")
    page.get_by_label("Hva").select_option(label="Aktiv slått på/av")
    expect(page).to_have_url(re.compile(r"hva=client\.active"))
    events = log.locator("tr.audit-event")
    expect(events.first).to_have_attribute("data-kind", "client.active")
    mine = events.filter(has_text=company.name).first
    expect(mine).to_contain_text("AKTIV: av → på")
    expect(mine).to_contain_text("demo@example.no")
    assert all(kind == "client.active" for kind in events.evaluate_all(
        "rows => rows.map(r => r.dataset.kind)"
    ))  # fmt: skip
    assert page.evaluate("window.__notReloaded") is True  # the list alone was swapped
    expect(log.get_by_role("link", name="Eksporter CSV")).to_have_attribute(
        "href", "/innstillinger/logg/logg.csv?hva=client.active"
    )
    # The table scrolls inside its own box; the page never sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "logg-390")
