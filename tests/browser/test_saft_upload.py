"""SAF-T files in Chromium: a files integration from Ny integrasjon, files chosen with the
picker and dropped on the zone, each file's result, the client's saldobalanse with the
file's warnings and a movement's postings from the file's lines, at desktop and phone
width."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from services.balances import format_amount
from tests.browser.conftest import log_in, screenshot
from tests.saft_files import CLOSING_SHIFT, Break, random_books, write_saft

pytestmark = pytest.mark.browser


def test_an_office_uploads_saft_files_and_reads_their_saldobalanse(
    page: Page, tmp_path: Path
) -> None:
    log_in(page)
    page.get_by_role("link", name="Ny integrasjon").click()
    page.get_by_label("Lokale og andre regnskapssystemer (SAF-T-fil)").check()
    expect(page.get_by_label("Egen brukernøkkel")).to_be_hidden()  # no key for files
    page.get_by_label("Beskrivelse (Ikke fyll inn personopplysninger i feltet)").fill("Lokale")
    screenshot(page, "saft-01-ny-integrasjon")
    page.get_by_role("button", name="Opprett").click()
    expect(page.get_by_role("heading", name="Last opp SAF-T-filer")).to_be_visible()

    good = write_saft(
        tmp_path / "Fjordbakst 2022.xml",
        random_books(year=2022, seed=11),
        breakage=Break.CLOSING_MISMATCH,
        company_name="Fjordbakst & Sønn AS",
        registration_number="923609016",
    )
    bad = write_saft(tmp_path / "feil.xml", random_books(seed=12), breakage=Break.XSD_INVALID)
    page.locator("#saft-files").set_input_files([good.path, bad.path])

    imports = page.locator("#saft-imports > li")
    done = imports.filter(has_text="Fjordbakst 2022.xml")
    refused = imports.filter(has_text="feil.xml")
    expect(done.locator(".badge")).to_have_text("Importert", timeout=30_000)
    expect(done).to_contain_text("januar–desember 2022")
    expect(done).to_contain_text("1 avvik i filen")
    expect(refused.locator(".badge")).to_have_text("Avvist", timeout=30_000)
    expect(refused.get_by_role("alert")).to_contain_text(f"linje {bad.broken_line}")
    # The new client shows in the table without a reload, with the file it came from.
    row = page.locator("tr[id^=client-]", has_text="Fjordbakst & Sønn AS")
    expect(row).to_contain_text("923 609 016")
    expect(row).to_contain_text("Fjordbakst 2022.xml · januar–desember 2022")
    expect(page.locator("#client-counts")).to_contain_text("Klienter: 1")
    screenshot(page, "saft-02-integrasjon")

    # A file dropped on the zone goes the same way.
    dropped = write_saft(
        tmp_path / "annen.xml", random_books(year=2023, seed=13), registration_number="974760673"
    )
    transfer = page.evaluate_handle(
        """(text) => { const data = new DataTransfer();
            data.items.add(new File([text], "Slippet fil.xml", {type: "application/xml"}));
            return data; }""",
        dropped.path.read_text(encoding="utf-8"),
    )
    page.dispatch_event(".dropzone", "drop", {"dataTransfer": transfer})
    expect(imports.filter(has_text="Slippet fil.xml").locator(".badge")).to_have_text(
        "Importert", timeout=30_000
    )
    expect(page.locator("#client-counts")).to_contain_text("Klienter: 2")

    row.get_by_role("link", name="Fjordbakst & Sønn AS", exact=True).click()
    expect(page.get_by_role("heading", name="Avvik i filen")).to_be_visible()
    first = min(good.openings)
    finding = page.locator(f".finding-list li[data-account='{first}']")
    expect(finding).to_contain_text(f"differanse {format_amount(CLOSING_SHIFT)}")
    table = page.locator("#trial-balance")
    expect(table).to_contain_text("desember 2022")
    expect(table.locator("tr.sum td.amount")).to_have_text(["0,00", "0,00", "0,00"])
    page.get_by_label("Fra måned").select_option(label="Januar")
    page.get_by_label("Til måned").select_option(label="Desember")
    page.get_by_role("button", name="Vis saldobalanse").click()
    expect(table).to_contain_text("januar–desember 2022")
    closing = good.closings[first] - CLOSING_SHIFT  # opening + lines, not the file's figure
    expect(table.locator(f"tr[data-account='{first}'] td.amount").last).to_have_text(
        format_amount(closing)
    )
    expect(page.get_by_role("heading", name="Importhistorikk")).to_be_visible()
    screenshot(page, "saft-03-klient")

    # A movement leads to the file's own lines behind it, which sum to it.
    movement = table.locator(f"tr[data-account='{first}'] td.amount").nth(1)
    moved = movement.inner_text()
    movement.get_by_role("link").click()
    heading = page.get_by_role("heading", name=re.compile(f"Posteringer på konto {first}"))
    expect(heading).to_be_visible()
    expect(page.locator("tr.posting").first).to_be_visible()
    expect(page.locator("#postings tr.sum td.amount")).to_have_text(moved)
    expect(page.locator("#postings")).not_to_contain_text("Tallene er endret")
    page.get_by_role("link", name=re.compile("Tilbake til saldobalansen")).click()
    expect(table).to_contain_text("januar–desember 2022")

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "saft-04-klient-390")
    page.get_by_role("link", name=re.compile("Tilbake til klienter")).click()
    expect(page.get_by_role("heading", name="Last opp SAF-T-filer")).to_be_visible()
    screenshot(page, "saft-05-integrasjon-390")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page scrolls sideways at 390 px ({width} px)"
