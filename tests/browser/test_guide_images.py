"""The screenshots in the setup guides, made here: the demo app walked through the states each
guide shows (Tripletex, PowerOffice Go, SAF-T), every state checked by axe. Each picture is
cropped to what the guide talks about, at most 1000 px wide, and saved to
test-artifacts/guide/; with UPDATE_GUIDE_IMAGES=1 also to static/guide/, where the guides
take them from:

    UPDATE_GUIDE_IMAGES=1 .venv/bin/pytest tests/browser/test_guide_images.py

The demo's own buttons and hints are hidden in the pictures: they are not in a real app."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from routes.guide import GUIDES, IMAGES, load
from simulators.tripletex.generate import NO_API_ACCESS_NAME
from tests.browser.conftest import ARTIFACTS, assert_accessible, log_in
from tests.saft_files import Break, random_books, write_saft

pytestmark = pytest.mark.browser

OUT = ARTIFACTS / "guide"
UPDATE = os.environ.get("UPDATE_GUIDE_IMAGES") == "1"
MAX_WIDTH = 1000
MAX_TOTAL_BYTES = 1_500_000
DESCRIPTION_LABEL = "Beskrivelse (Ikke fyll inn personopplysninger i feltet)"
# What only demo mode shows: its buttons, what they answer, the demo keys under the key field.
DEMO_ONLY = "form.demo, #demo-notice, .key-field .hint"

TRIPLETEX = [
    "tripletex-ny-integrasjon.png",
    "tripletex-klienter.png",
    "tripletex-aktive.png",
    "tripletex-klientside.png",
    "tripletex-ny-klient.png",
    "tripletex-ingen-tilgang.png",
]
POWEROFFICE = ["poweroffice-ny-integrasjon.png", "poweroffice-klienter.png"]
SAFT = ["saft-ny-integrasjon.png", "saft-opplasting.png", "saft-avvik.png"]


def shoot(
    page: Page, name: str, area: Locator, top: Locator | None = None, bottom: Locator | None = None
) -> None:
    """The guide's picture `name`: `area` (a card) across, from `top` down to `bottom` (both
    default to the area itself). Checked by axe first; the demo's own elements hidden."""
    assert_accessible(page)
    page.evaluate(
        "(selector) => { for (const el of document.querySelectorAll(selector)) "
        "el.style.display = 'none'; window.scrollTo(0, 0); }",
        DEMO_ONLY,
    )
    across = area.bounding_box()
    first = (top or area).bounding_box()
    last = (bottom or top or area).bounding_box()
    assert across and first and last, f"{name}: nothing to photograph"
    pad = 8
    y = max(0, first["y"] - pad)
    clip = {
        "x": max(0, across["x"] - 1),
        "y": y,
        "width": across["width"] + 2,
        "height": last["y"] + last["height"] + pad - y,
    }
    png = page.screenshot(clip=clip, full_page=True, animations="disabled", caret="hide")
    data = compress(png)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_bytes(data)
    if UPDATE:
        IMAGES.mkdir(exist_ok=True)
        (IMAGES / name).write_bytes(data)


def compress(png: bytes) -> bytes:
    """At most MAX_WIDTH wide and 256 colours (screens are flat colours and text): a few tens
    of kilobytes a picture."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > MAX_WIDTH:
        height = round(image.height * MAX_WIDTH / image.width)
        image = image.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)
    small = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def desktop(page: Page) -> None:
    # Wide enough for the client table without sideways scrolling; tall so that a crop is
    # inside the first screen.
    page.set_viewport_size({"width": 1280, "height": 1500})


def form_card(page: Page) -> Locator:
    return page.locator("section.card", has=page.locator("#integration-form"))


def client_rows(page: Page) -> Locator:
    return page.locator("tr[id^=client-]")


def test_tripletex_guide_pictures(page: Page) -> None:
    desktop(page)
    log_in(page)
    page.get_by_role("link", name="Ny integrasjon").click()
    page.get_by_role("radio", name="Tripletex").check()
    page.get_by_label("Egen brukernøkkel").fill("demo-regnskapskontor")
    page.get_by_label(DESCRIPTION_LABEL).fill("Alle klienter")
    shoot(page, "tripletex-ny-integrasjon.png", form_card(page))

    page.get_by_role("button", name="Opprett").click()
    created = page.get_by_role("heading", name="Tripletex - Alle klienter")
    expect(created.or_(page.locator("#same-key"))).to_be_visible()
    if not created.is_visible():  # an earlier test in this server has the key: one more
        page.get_by_role("button", name="Opprett likevel").click()
    expect(created).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Integrasjonen er opprettet")).to_be_visible()
    rows = client_rows(page)
    expect(rows.nth(7)).to_be_visible()
    section = page.locator("#client-section")
    shoot(page, "tripletex-klienter.png", section, bottom=rows.nth(5))

    # Three clients on: synced, OK, and the time under SIST OPPDATERT.
    for index in range(3):
        row = rows.nth(index)
        row.get_by_role("switch", name=re.compile("AKTIV")).click()
        expect(row.get_by_role("switch", name=re.compile("AKTIV"))).to_have_attribute(
            "aria-checked", "true"
        )
    for index in range(3):
        expect(rows.nth(index).locator(".status-word")).to_have_text("OK", timeout=45_000)
    expect(page.locator("#client-counts")).to_contain_text("Aktive klienter: 3")
    shoot(page, "tripletex-aktive.png", section, page.locator("#client-table"), rows.nth(5))

    # The client page updates itself when new figures land (here: a voucher posted in the
    # simulator, whose callback brings it in).
    first = rows.first.locator("a.client-link").inner_text()
    rows.first.locator("a.client-link").click()
    expect(page.get_by_role("heading", name=first)).to_be_visible()
    page.get_by_role("button", name="Demo: bokfør et bilag i Tripletex").click()
    expect(page.locator("#client-live")).to_contain_text("Nye tall hentet", timeout=45_000)
    balance = page.locator("#trial-balance tbody tr")
    expect(balance.nth(8)).to_be_visible()
    shoot(page, "tripletex-klientside.png", page.locator("main"), bottom=balance.nth(8))

    # A client granted to the key later, brought in by Oppdater klientliste.
    page.get_by_role("link", name=re.compile("Tilbake til klienter")).click()
    page.get_by_role("button", name="Demo: gi tilgang til en ny klient").click()
    granted = page.locator("#demo-notice strong").first.inner_text()
    page.get_by_role("button", name="Oppdater klientliste").click()
    notice = page.get_by_role("status").filter(has_text="Klientlisten er oppdatert")
    expect(notice).to_contain_text("1 ny klient")
    expect(notice.get_by_role("link", name="Vis de nye klientene")).to_be_visible()
    # Searched for (not followed by the link, which loads the page without the message).
    page.get_by_placeholder("Søk...").fill(granted)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(granted)
    expect(rows.first.locator(".badge.new")).to_have_text("Ny")
    toolbar = page.locator("#client-section .toolbar")
    shoot(page, "tripletex-ny-klient.png", section, toolbar, rows.first)

    # The client that has not given the office API access: activated, it says where to fix it.
    page.get_by_placeholder("Søk...").fill(NO_API_ACCESS_NAME)
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(NO_API_ACCESS_NAME)
    row = rows.first
    row.get_by_role("switch", name=re.compile("AKTIV")).click()
    expect(row.locator(".status-word")).to_have_text("Ingen tilgang", timeout=45_000)
    expect(row.locator(".sync-status.error")).to_contain_text("Regnskapsførers tilgang")
    shoot(page, "tripletex-ingen-tilgang.png", section, page.locator("table.clients thead"), row)


def test_poweroffice_guide_pictures(page: Page) -> None:
    desktop(page)
    log_in(page)
    page.get_by_role("link", name="Ny integrasjon").click()
    page.get_by_role("radio", name="PowerOffice Go").check()
    connect = page.get_by_role("button", name="Koble til PowerOffice Go")
    expect(connect).to_be_visible()
    page.get_by_label(DESCRIPTION_LABEL).fill("Avdeling Bergen")
    shoot(page, "poweroffice-ny-integrasjon.png", form_card(page))

    # The simulator's approval page stands in for PowerOffice Go's own: not pictured.
    connect.click()
    expect(page).to_have_url(re.compile(r"/poweroffice/ApiAuthV2\?token="))
    for box in page.get_by_role("checkbox").all():
        box.check()
    page.get_by_role("button", name="Godkjenn").click()
    expect(page.get_by_role("heading", name="PowerOffice Go - Avdeling Bergen")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("er koblet til fra PowerOffice Go")
    rows = client_rows(page)
    expect(rows.nth(5)).to_be_visible()
    shoot(page, "poweroffice-klienter.png", page.locator("#client-section"), bottom=rows.nth(5))


def test_saft_guide_pictures(page: Page, tmp_path: Path) -> None:
    desktop(page)
    log_in(page)
    page.get_by_role("link", name="Ny integrasjon").click()
    page.get_by_label("Lokale og andre regnskapssystemer (SAF-T-fil)").check()
    expect(page.get_by_label("Egen brukernøkkel")).to_be_hidden()
    page.get_by_label(DESCRIPTION_LABEL).fill("Lokale klienter")
    shoot(page, "saft-ny-integrasjon.png", form_card(page))

    page.get_by_role("button", name="Opprett").click()
    expect(page.get_by_role("heading", name="Last opp SAF-T-filer")).to_be_visible()
    file = write_saft(
        tmp_path / "Fjordbakst 2024.xml",
        random_books(year=2024, seed=11),
        breakage=Break.CLOSING_MISMATCH,
        company_name="Fjordbakst & Sønn AS",
        registration_number="923609016",
    )
    page.locator("#saft-files").set_input_files([file.path])
    done = page.locator("#saft-imports > li").filter(has_text="Fjordbakst 2024.xml")
    expect(done.locator(".badge")).to_have_text("Importert", timeout=30_000)
    expect(done).to_contain_text("1 avvik i filen")
    row = client_rows(page).filter(has_text="Fjordbakst & Sønn AS")
    expect(row).to_contain_text("Fjordbakst 2024.xml")
    shoot(page, "saft-opplasting.png", page.locator("#client-section"), page.locator("#last-opp"))

    row.get_by_role("link", name="Fjordbakst & Sønn AS", exact=True).click()
    findings = page.locator("section.findings")
    expect(findings.get_by_role("heading", name="Avvik i filen")).to_be_visible()
    shoot(page, "saft-avvik.png", page.locator("main"), page.locator("#client-head"), findings)


def test_every_picture_a_guide_shows_is_made_here_and_committed() -> None:
    """A guide never points at a missing picture, and static/guide/ holds no stale ones."""
    referenced = {image for source in GUIDES.glob("*.txt") for image in load(source.stem).images}
    assert referenced == set(TRIPLETEX + POWEROFFICE + SAFT)
    missing = sorted(name for name in referenced if not (IMAGES / name).is_file())
    assert not missing, f"run UPDATE_GUIDE_IMAGES=1 pytest {__file__}: {missing} are missing"
    committed = {path.name for path in IMAGES.glob("*.png")}
    assert committed == referenced, f"not used by any guide: {sorted(committed - referenced)}"
    total = sum((IMAGES / name).stat().st_size for name in committed)
    assert total < MAX_TOTAL_BYTES, f"the guide pictures take {total} bytes"
    for name in committed:
        with Image.open(IMAGES / name) as image:
            assert image.width <= MAX_WIDTH, f"{name} is {image.width} px wide"
