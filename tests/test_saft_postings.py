"""Drill-down for SAF-T clients (issue 19): a movement in an imported client's saldobalanse
leads to the file's own transaction lines behind it, which sum to the movement; a file
imported again, or another file for the same months, replaces the lines rather than adding
to them; a file from mid-year leaves the months before it with their own lines; the lines go
with the client."""

from __future__ import annotations

import html as html_text
import re
from decimal import Decimal
from pathlib import Path
from xml.etree import ElementTree

import pytest
from litestar.testing import AsyncTestClient

from services.balances import Period, format_amount
from services.settings import Settings
from tests.conftest import csrf, htmx, query
from tests.saft_files import NAMESPACE, random_books, write_saft
from tests.test_postings import Row, posting_table, postings_url, text_of
from tests.test_saft_web import create_saft_integration, upload

pytestmark = pytest.mark.anyio

NS = {"s": NAMESPACE}
Line = tuple[int, int, int, Row]  # account, year, month, the row the page shows


def file_lines(path: Path) -> list[Line]:
    """Every transaction line of a (small) SAF-T file, read here with the standard library:
    the account, the month it counts in and the row the postings page must show for it."""
    lines: list[Line] = []
    root = ElementTree.parse(path).getroot()  # a file this test wrote
    for transaction in root.iterfind(".//s:Transaction", NS):
        year = int(transaction.findtext("s:PeriodYear", namespaces=NS) or 0)
        month = min(max(int(transaction.findtext("s:Period", namespaces=NS) or 0), 1), 12)
        day = transaction.findtext("s:TransactionDate", namespaces=NS) or ""
        voucher = transaction.findtext("s:TransactionID", namespaces=NS) or ""
        for line in transaction.iterfind("s:Line", NS):
            debit = line.findtext("s:DebitAmount/s:Amount", namespaces=NS)
            credit = line.findtext("s:CreditAmount/s:Amount", namespaces=NS)
            amount = Decimal(debit) if debit is not None else -Decimal(credit or "0")
            shown = f"{day[8:10]}.{day[5:7]}.{day[:4]}"
            text = line.findtext("s:Description", namespaces=NS) or ""
            account = int(line.findtext("s:AccountID", namespaces=NS) or 0)
            lines.append((account, year, month, (shown, voucher, text, amount)))
    return lines


def expected_rows(lines: list[Line], number: int, period: Period) -> list[Row]:
    return [
        row
        for account, year, month, row in lines
        if account == number
        and year == period.year
        and period.first_month <= month <= period.last_month
    ]


def movement_links(page: str) -> dict[int, str]:
    """Account number → where its movement in the saldobalanse leads."""
    return {
        int(number): html_text.unescape(href)
        for href, number in re.findall(
            r'<a href="(/integrasjoner/\d+/klienter/\d+/konto/(\d+)\?[^"]+)"', page
        )
    }


async def imported_client(client: AsyncTestClient, integration_id: int) -> int:
    table = await client.get(f"/integrasjoner/{integration_id}")
    found = re.search(r"/klienter/(\d+)/oversikt", table.text)
    assert found, table.text
    return int(found.group(1))


async def line_count(settings: Settings, client_id: int) -> int:
    rows = await query(settings, f"SELECT count(*) FROM saft_line WHERE client_id = {client_id}")
    return int(rows[0][0])


async def test_a_movement_leads_to_the_files_lines_which_sum_to_it(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    written = write_saft(tmp_path / "f.xml", random_books(year=2024, seed=5), lines_per_movement=3)
    assert (await upload(client, integration_id, written.path)).status_code == 201
    client_id = await imported_client(client, integration_id)
    lines = file_lines(written.path)
    assert len(lines) == written.line_count
    assert await line_count(settings, client_id) == written.line_count

    overview = f"/integrasjoner/{integration_id}/klienter/{client_id}/oversikt"
    page = await client.get(overview, params={"aar": "2024", "fra": "3", "til": "5"})
    links = movement_links(page.text)
    assert set(links) == {int(a) for a in written.openings}  # every account's movement
    number = min(links)
    period = Period(2024, 3, 5)

    postings = await client.get(links[number])

    assert postings.status_code == 200, postings.text
    text = text_of(postings.text)
    assert f"Posteringer på konto {number} Konto {number}, {period.label}" in text
    assert "fra de importerte SAF-T-filene" in text
    assert "lagres ikke" not in text
    rows, total = posting_table(postings.text)
    expected = expected_rows(lines, number, period)
    assert len(expected) > 3
    assert sorted(rows) == sorted(expected)
    assert (
        [r[0] for r in rows]
        == sorted(  # by date
            (r[0] for r in rows), key=lambda d: (d[6:], d[3:5], d[:2])
        )
    )
    movement = sum(
        (written.movements.get((str(number), 2024, m), Decimal(0)) for m in (3, 4, 5)),
        Decimal("0.00"),
    )
    assert total == sum((r[3] for r in rows), Decimal(0)) == movement
    assert format_amount(movement) in page.text  # the figure that was clicked
    assert "key-warning" not in postings.text
    # The fragment htmx swaps, for a period changed on the page.
    fragment = await client.get(links[number], headers={**htmx(client), "HX-Target": "postings"})
    assert fragment.text.lstrip().startswith('<div id="postings"')
    assert posting_table(fragment.text) == (rows, total)


async def test_importing_again_replaces_the_lines_and_never_adds_to_them(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    first = write_saft(tmp_path / "a.xml", random_books(year=2024, seed=6), lines_per_movement=2)
    assert (await upload(client, integration_id, first.path)).status_code == 201
    client_id = await imported_client(client, integration_id)
    # The same file again is "uendret" and the same file under another name too.
    assert (await upload(client, integration_id, first.path)).status_code == 201
    assert (await upload(client, integration_id, first.path, "kopi.xml")).status_code == 201
    assert await line_count(settings, client_id) == first.line_count
    # A corrected file for the same year: its lines take the place of the first file's.
    second = write_saft(tmp_path / "b.xml", random_books(year=2024, seed=7), lines_per_movement=4)
    assert (await upload(client, integration_id, second.path)).status_code == 201
    assert await line_count(settings, client_id) == second.line_count

    number = min(int(a) for a in second.openings)
    page = await client.get(
        postings_url(integration_id, client_id, number), params={"aar": 2024, "fra": 1, "til": 12}
    )

    rows, total = posting_table(page.text)
    assert sorted(rows) == sorted(
        expected_rows(file_lines(second.path), number, Period(2024, 1, 12))
    )
    assert total == sum(
        (v for (a, _, _), v in second.movements.items() if a == str(number)), Decimal("0.00")
    )
    assert "key-warning" not in page.text


async def test_a_file_from_mid_year_keeps_the_lines_of_the_months_before_it(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    whole = write_saft(tmp_path / "2025.xml", random_books(year=2025, seed=8))
    assert (await upload(client, integration_id, whole.path)).status_code == 201
    client_id = await imported_client(client, integration_id)
    later = write_saft(
        tmp_path / "h2.xml",
        random_books(year=2025, seed=9, months=range(7, 13)),
        lines_per_movement=2,
    )
    text = later.path.read_text(encoding="utf-8")
    later.path.write_text(text.replace("<PeriodStart>1<", "<PeriodStart>7<"), encoding="utf-8")
    assert (await upload(client, integration_id, later.path)).status_code == 201

    kept = [line for line in file_lines(whole.path) if line[2] < 7]
    assert await line_count(settings, client_id) == len(kept) + later.line_count
    number = min(int(a) for a in whole.openings)
    url = postings_url(integration_id, client_id, number)
    for period, lines in (
        (Period(2025, 1, 6), kept),
        (Period(2025, 7, 12), file_lines(later.path)),
        (Period(2025, 1, 12), kept + file_lines(later.path)),
    ):
        page = await client.get(
            url, params={"aar": period.year, "fra": period.first_month, "til": period.last_month}
        )
        assert page.status_code == 200, page.text
        rows, total = posting_table(page.text)
        assert sorted(rows) == sorted(expected_rows(lines, number, period)), period
        assert total == sum((r[3] for r in rows), Decimal(0))
        assert "key-warning" not in page.text, period  # the sum is the saldobalanse's


async def test_a_month_imported_before_lines_were_kept_says_so(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    from tests.conftest import execute

    integration_id = await create_saft_integration(client)
    written = write_saft(tmp_path / "f.xml", random_books(year=2024, seed=10))
    assert (await upload(client, integration_id, written.path)).status_code == 201
    client_id = await imported_client(client, integration_id)
    # As an import from before this version left it: balances, no lines.
    await execute(settings, f"DELETE FROM saft_line WHERE client_id = {client_id}")
    await execute(settings, "UPDATE saft_import SET lines_kept = false")
    number = min(int(a) for a in written.openings)
    url = postings_url(integration_id, client_id, number)

    page = await client.get(url, params={"aar": 2024, "fra": 1, "til": 12})

    assert page.status_code == 200
    assert "Ingen posteringer på kontoen i perioden." in page.text
    assert "har ingen linjer her – last opp filen for perioden på nytt" in text_of(page.text)
    # Uploading the same file again now stores its lines (it is not "uendret").
    assert (await upload(client, integration_id, written.path)).status_code == 201
    assert await line_count(settings, client_id) == written.line_count
    page = await client.get(url, params={"aar": 2024, "fra": 1, "til": 12})
    assert "key-warning" not in page.text
    assert len(posting_table(page.text)[0]) > 0


async def test_deleting_the_integration_deletes_its_lines(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    written = write_saft(tmp_path / "f.xml", random_books(year=2024, seed=11))
    assert (await upload(client, integration_id, written.path)).status_code == 201
    client_id = await imported_client(client, integration_id)
    assert await line_count(settings, client_id) == written.line_count

    response = await client.post(
        f"/integrasjoner/{integration_id}/slett",
        data={"_csrf_token": csrf(client)},
        follow_redirects=False,
    )

    assert response.status_code in (200, 303), response.text
    assert await query(settings, "SELECT count(*) FROM saft_line") == [(0,)]
