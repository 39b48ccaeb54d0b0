"""The saldobalanse taken away: the Excel file and the CSV of a client hold, cell for cell,
what the client page shows for the same period compared with the year before (headings,
accounts, a sum per class, Sum balanse, Årsresultat, Sum, the year before's columns), and
what the API hands out for both years; the print view names whose books and when; one
workbook for all of an integration's clients; another office gets nothing."""

from __future__ import annotations

import csv
import dataclasses
import html as html_text
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import unquote

import pytest
from litestar.testing import AsyncTestClient
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet

from services import exports
from services.balances import BalanceRow, Period, TrialBalance
from services.ratelimit import API_LIMITER
from services.settings import Settings
from simulators.tripletex.model import Company
from tests import api_support
from tests.api_support import create_token
from tests.conftest import (
    Simulator,
    add_user,
    create_integration,
    execute,
    htmx,
    login,
    query,
)
from tests.sync_support import sync_engine
from tests.test_trial_balance_structure import Row, api_year, expected_rows, shown_rows

pytestmark = pytest.mark.anyio

api = api_support.api
no_settle_delay = api_support.no_settle_delay

CENT = Decimal("0.01")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS = ["Konto", "Navn", "Inngående saldo", "Bevegelse", "Utgående saldo"]
Line = tuple[int | None, str, Decimal, Decimal, Decimal]
AMOUNT_FORMAT = "#,##0.00"


def compared_columns(year: int) -> list[str]:
    return [
        *COLUMNS,
        f"Bevegelse i fjor ({year})",
        f"Utgående saldo i fjor ({year})",
        "Endring i utgående saldo",
    ]


@dataclasses.dataclass
class Synced:
    integration_id: int
    client_id: int
    company: Company

    @property
    def base(self) -> str:
        return f"/integrasjoner/{self.integration_id}/klienter/{self.client_id}"


def base_of(integration_id: int, client_id: int) -> str:
    return f"/integrasjoner/{integration_id}/klienter/{client_id}"


async def local_id(settings: Settings, erp_id: int) -> int:
    return (await query(settings, f"select id from client where erp_id = {erp_id}"))[0][0]


@pytest.fixture
async def synced(client: AsyncTestClient, settings: Settings, simulator: Simulator) -> Synced:
    """The first client of the accountant's key ('Bakeriet <Søt & Salt> AS'), synced once."""
    integration_id = await create_integration(client, description="Saldobalanse")
    company = simulator.state.clients_of("demo-regnskapskontor")[0]
    client_id = await local_id(settings, company.id)
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "ok"
    return Synced(integration_id, client_id, company)


@pytest.fixture
async def token(client: AsyncTestClient, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(API_LIMITER, "burst", 10**6)
    return await create_token(client)


def periods(simulator: Simulator) -> Iterator[dict[str, int]]:
    """Last year whole, one month of it (the year before is not stored: no comparison),
    and this year so far (compared with the same months of last year)."""
    today = simulator.state.today
    yield {"aar": today.year - 1, "fra": 1, "til": 12}
    yield {"aar": today.year - 1, "fra": 6, "til": 6}
    yield {"aar": today.year, "fra": 1, "til": today.month}


def number(value: object) -> Decimal:
    """A number cell read back (float or int) as the exact amount it holds."""
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    return Decimal(repr(value)).quantize(CENT)


@dataclasses.dataclass
class SheetTable:
    facts: dict[str, str]  # label → value, above the table
    heads: list[str]
    rows: list[Row]  # as tests.test_trial_balance_structure.shown_rows reads the page
    notes: list[str]  # the lines under the table


def sheet_table(sheet: Worksheet) -> SheetTable:
    """A client sheet read back: the facts, the column names, every row of the table as
    the page's rows read (a heading, an account as "1920 Name", a sum) and the notes under
    it. Asserts the layout on the way: every amount a number cell with two decimals and
    thousands separators, headings and sums bold, with no account number."""
    cells = [list(row) for row in sheet.iter_rows(values_only=False)]
    assert cells[0][0].value == "Saldobalanse"
    facts = {row[0].value: row[1].value for row in cells[1:7]}
    assert all(not any(c.value for c in row) for row in cells[7:8])
    heads = [c.value for c in cells[8] if c.value is not None]
    assert heads[:5] == COLUMNS, heads
    width = len(heads)
    rows: list[Row] = []
    body = iter(cells[9:])
    for row in body:
        values = [c.value for c in row]
        if all(v is None for v in values):
            break
        number, label = values[0], values[1]
        amounts = row[2:width]
        assert all(c.value is None for c in row[width:])
        if isinstance(number, int):
            assert all(c.number_format == AMOUNT_FORMAT for c in amounts), values
            rows.append(("konto", f"{number} {label}", tuple(number_of(c.value) for c in amounts)))
            continue
        assert number is None and isinstance(label, str) and row[1].font.b, values
        if all(c.value is None for c in amounts):
            rows.append(("del", label, ()))
        else:
            assert all(c.number_format == AMOUNT_FORMAT and c.font.b for c in amounts), values
            rows.append(("sum", label, tuple(number_of(c.value) for c in amounts)))
    notes = []
    for row in body:
        assert all(c.value is None for c in row if c.column != 2), [c.value for c in row]
        notes.append(row[1].value)
    return SheetTable(facts, heads, rows, notes)


def csv_table(raw: bytes) -> tuple[list[str], list[Row]]:
    """A CSV's column names and its rows as the page's rows read; asserts Norwegian Excel's
    format (BOM, CRLF, semicolons, decimal comma without thousands separators)."""
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads æøå right
    assert raw.count(b"\r\n") == raw.count(b"\n")  # every line ends CRLF
    lines = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))
    heads, rows = lines[0], []
    for line in lines[1:]:
        assert len(line) == len(heads), line
        number, label, amounts = line[0], line[1], line[2:]
        if number:
            kind, label = "konto", f"{number} {label}"
        else:
            kind = "sum" if any(amounts) else "del"
        for value in amounts if kind != "del" else ():
            assert re.fullmatch(r"-?\d+,\d\d", value), line  # comma, no thousands sep.
        assert kind != "del" or not any(amounts), line
        values = tuple(Decimal(v.replace(",", ".")) for v in amounts) if kind != "del" else ()
        rows.append((kind, label, values))
    return heads, rows


async def screen(
    client: AsyncTestClient, base: str, period: dict[str, int]
) -> tuple[list[Row], int | None]:
    """The client page's saldobalanse for the period, compared with the year before when
    the page can: its rows, and the year compared with (None: not stored)."""
    page = (await client.get(f"{base}/oversikt", params={**period, "sammenlign": "1"})).text
    compared = re.search(r"Bevegelse i fjor <span class=\"year\">\((\d{4})\)", page)
    return shown_rows(page), int(compared.group(1)) if compared else None


async def api_rows(
    api: AsyncTestClient, token: str, client_id: int, period: dict[str, int], compared: bool
) -> list[Row]:
    """The grouped saldobalanse computed from what the API hands out for the period (and
    for the same months a year before, when compared)."""
    now = Period(period["aar"], period["fra"], period["til"])
    figures, names = await api_year(api, token, client_id, now)
    if not compared:
        return expected_rows(figures, names)
    before, old_names = await api_year(api, token, client_id, Period(now.year - 1, *_months(now)))
    return expected_rows(figures, {**old_names, **names}, before)


def _months(period: Period) -> tuple[int, int]:
    return period.first_month, period.last_month


def number_of(value: object) -> Decimal:
    """A number cell read back (float or int) as the exact amount it holds."""
    return number(value)


def disposition_name(header: str) -> tuple[str, str]:
    """The ASCII filename and the RFC 5987 filename* of a Content-Disposition."""
    plain = re.search(r'filename="([^"]*)"', header)
    star = re.search(r"filename\*=UTF-8''(\S+)", header)
    assert header.startswith("attachment;") and plain and star, header
    assert plain.group(1).isascii()
    return plain.group(1), unquote(star.group(1))


async def data_time(client: AsyncTestClient, synced: Synced) -> str:
    """'Sist synkronisert' as the client page shows it."""
    page = (await client.get(f"{synced.base}/oversikt")).text
    shown = re.search(r"Sist synkronisert: <strong>([^<]+)</strong>", page)
    assert shown, page
    return shown.group(1)


# -- one client ----------------------------------------------------------------------------


async def test_excel_holds_the_screens_and_the_apis_figures_cell_for_cell(
    client: AsyncTestClient,
    api: AsyncTestClient,
    simulator: Simulator,
    synced: Synced,
    token: str,
) -> None:
    company = synced.company
    compared_years = []
    for period in periods(simulator):
        response = await client.get(f"{synced.base}/saldobalanse.xlsx", params=period)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == XLSX
        slug = f"{period['aar']}-{period['fra']:02d}"
        if period["til"] != period["fra"]:
            slug += f"-{period['til']:02d}"
        expected_name = f"saldobalanse-{company.organization_number}-{slug}.xlsx"
        assert disposition_name(response.headers["content-disposition"]) == (
            expected_name,
            expected_name,
        )
        book = load_workbook(io.BytesIO(response.content))
        assert book.sheetnames == ["Saldobalanse"]
        table = sheet_table(book["Saldobalanse"])
        on_screen, compared_with = await screen(client, synced.base, period)
        compared_years.append(compared_with)
        # Every cell of the table is the page's: headings, accounts, the sum per class, Sum
        # balanse, Årsresultat, Sum, and the year before's columns when it is stored.
        assert table.rows == on_screen, period
        assert table.rows == await api_rows(
            api, token, synced.client_id, period, compared_with is not None
        )
        assert [kind for kind, _, _ in table.rows].count("konto") > 5
        assert any(label.startswith("Årsresultat") for _, label, _ in table.rows)
        assert table.rows[-1][:2] == ("sum", "Sum")
        assert table.rows[-1][2][:3] == (Decimal("0.00"),) * 3
        label = Period(period["aar"], period["fra"], period["til"]).label
        number = company.organization_number
        if compared_with is None:
            assert table.heads == COLUMNS
            comparison = f"Ingen data for {period['aar'] - 1}"
        else:
            assert table.heads == compared_columns(compared_with)
            comparison = Period(compared_with, period["fra"], period["til"]).label
        assert table.facts == {
            "Regnskapskontor": "Kontor A AS",
            "Klient": company.name,
            "Org.nr.": f"{number[:3]} {number[3:6]} {number[6:]}",
            "Periode": label,
            "Sammenlignet med": comparison,
            "Data per": await data_time(client, synced),
        }
        assert table.notes[0].startswith(f"Årsresultat for {label} (bevegelse): ")
    assert compared_years == [None, None, simulator.state.today.year - 1]


async def test_csv_opens_in_norwegian_excel_with_the_screens_figures(
    client: AsyncTestClient,
    api: AsyncTestClient,
    simulator: Simulator,
    synced: Synced,
    token: str,
) -> None:
    for period in periods(simulator):
        response = await client.get(f"{synced.base}/saldobalanse.csv", params=period)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        ascii_name, name = disposition_name(response.headers["content-disposition"])
        assert name == ascii_name and name.endswith(".csv")
        heads, rows = csv_table(response.content)
        on_screen, compared_with = await screen(client, synced.base, period)
        assert heads == (COLUMNS if compared_with is None else compared_columns(compared_with))
        assert rows == on_screen, period
        assert rows == await api_rows(
            api, token, synced.client_id, period, compared_with is not None
        )
        # Sums are told apart by their empty Konto and their label.
        sums = [label for kind, label, _ in rows if kind == "sum"]
        assert "Sum balanse" in sums and sums[-1] == "Sum"
        assert "Årsresultat (negativt tall = overskudd)" in sums


async def test_print_view_names_office_client_period_and_the_datas_time(
    client: AsyncTestClient, simulator: Simulator, synced: Synced
) -> None:
    year = simulator.state.today.year - 1
    response = await client.get(
        f"{synced.base}/saldobalanse/utskrift", params={"aar": year, "fra": 3, "til": 8}
    )
    assert response.status_code == 200
    page = response.text
    text = " ".join(html_text.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    number = synced.company.organization_number
    for fact in (
        "Regnskapskontor Kontor A AS",
        f"Klient {synced.company.name}",
        f"Org.nr. {number[:3]} {number[3:6]} {number[6:]}",
        f"Periode mars–august {year}",
        f"Data per {await data_time(client, synced)}",
    ):
        assert fact in text, fact
    assert "Bakeriet &lt;Søt &amp; Salt&gt; AS" in page  # the name escaped, not markup
    assert '<link rel="stylesheet" href="/static/print.css">' in page
    assert "Skriv ut / lagre som PDF" in text
    # The same rows and Sum as the client page shows for the period.
    shown = await client.get(f"{synced.base}/oversikt", params={"aar": year, "fra": 3, "til": 8})
    table = re.compile(r"<tbody>.*?</tfoot>", re.S)
    printed, on_page = table.search(page), table.search(shown.text)
    assert printed and on_page
    # On screen a movement links to its postings; on paper it is the figure alone.
    unlinked = re.sub(
        r'<a href="[^"]*/konto/\d+\?[^"]*" title="[^"]*">([^<]*)</a>', r"\1", on_page.group(0)
    )
    assert printed.group(0) == unlinked
    css = await client.get("/static/print.css")
    assert css.status_code == 200 and "@media print" in css.text


async def test_client_page_offers_the_shown_period_for_download(
    client: AsyncTestClient, simulator: Simulator, synced: Synced
) -> None:
    year = simulator.state.today.year - 1
    params = {"aar": year, "fra": 2, "til": 5}
    query_string = f"?aar={year}&amp;fra=2&amp;til=5"
    page = (await client.get(f"{synced.base}/oversikt", params=params)).text
    fragment = await client.get(
        f"{synced.base}/oversikt",
        params=params,
        headers={**htmx(client), "HX-Target": "trial-balance"},
    )
    for html in (page, fragment.text):  # the period form swaps the links with the table
        assert (
            f'href="{synced.base}/saldobalanse.xlsx{query_string}" download>Last ned Excel<' in html
        )
        assert f'href="{synced.base}/saldobalanse.csv{query_string}" download>Last ned CSV<' in html
        assert f'href="{synced.base}/saldobalanse/utskrift{query_string}">Utskrift<' in html
    # The links lead to the files of that period.
    link = html_text.unescape(re.findall(r'href="([^"]+\.xlsx[^"]*)"', page)[0])
    assert (await client.get(link)).status_code == 200


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"aar": "2020", "fra": "1", "til": "1"}, "Saldobalansen finnes bare for"),
        ({"fra": "13", "til": "13"}, "Fra måned må være et tall fra 1 til 12."),
        ({"fra": "9", "til": "3"}, "Fra måned kan ikke være etter Til måned."),
        ({"aar": "tjue"}, "Året må være et tall."),
    ],
)
async def test_a_bad_period_is_refused_in_norwegian(
    client: AsyncTestClient, synced: Synced, params: dict[str, str], message: str
) -> None:
    for url in ("saldobalanse.xlsx", "saldobalanse.csv", "saldobalanse/utskrift"):
        response = await client.get(f"{synced.base}/{url}", params=params)
        assert response.status_code == 400, url
        assert response.headers["content-type"].startswith("text/html")
        assert "content-disposition" not in response.headers
        page = html_text.unescape(response.text)
        assert message in page, url
        assert "Saldobalansen kan ikke lastes ned" in page
        assert f'href="{synced.base}/oversikt?' in page  # back to the form, period kept


async def test_a_client_never_synced_has_nothing_to_download(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    company = simulator.state.clients_of("demo-regnskapskontor")[3]
    base = f"/integrasjoner/{integration_id}/klienter/{await local_id(settings, company.id)}"
    response = await client.get(f"{base}/saldobalanse.xlsx")
    assert response.status_code == 400
    assert "klienten er ikke synkronisert" in html_text.unescape(response.text)


async def test_another_office_gets_not_found(
    client: AsyncTestClient, settings: Settings, synced: Synced
) -> None:
    from app import create_app

    integration = f"/integrasjoner/{synced.integration_id}"
    urls = [
        f"{synced.base}/saldobalanse.xlsx",
        f"{synced.base}/saldobalanse.csv",
        f"{synced.base}/saldobalanse/utskrift",
        f"{integration}/saldobalanse",
        f"{integration}/saldobalanse.xlsx",
    ]
    await add_user(settings, "nysgjerrig@kontor-b.no", "Kontor B AS")
    async with AsyncTestClient(create_app(settings)) as intruder:
        await login(intruder, "nysgjerrig@kontor-b.no")
        for url in urls:
            response = await intruder.get(url)
            assert response.status_code == 404, url
            assert synced.company.name not in html_text.unescape(response.text)
        # Office B's own integration does not open office A's client either.
        own = await create_integration(intruder, key="demo-eget-selskap", description="B")
        response = await intruder.get(
            f"/integrasjoner/{own}/klienter/{synced.client_id}/saldobalanse.xlsx"
        )
        assert response.status_code == 404
    # A client of another integration of the same office, and an unknown client: 404 too.
    other = await create_integration(client, key="demo-eget-selskap", description="Eget")
    for url in (
        f"/integrasjoner/{other}/klienter/{synced.client_id}/saldobalanse.csv",
        f"{integration}/klienter/999999/saldobalanse.csv",
    ):
        assert (await client.get(url)).status_code == 404
    # Logged out: to the login page, no file.
    async with AsyncTestClient(create_app(settings)) as stranger:
        for url in urls:
            response = await stranger.get(url, follow_redirects=False)
            assert response.status_code in (302, 303), url
            assert response.headers["location"] == "/login"


# -- all of an integration's clients --------------------------------------------------------


async def test_one_workbook_with_a_sheet_per_client_with_data(
    client: AsyncTestClient,
    api: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    token: str,
) -> None:
    integration_id = await create_integration(client, description="Kunder i Bærum")
    companies = simulator.state.clients_of("demo-regnskapskontor")
    with_data = companies[:3] + [c for c in companies if "'" in c.name]
    ids = {c.id: await local_id(settings, c.id) for c in with_data}
    async with sync_engine(settings, simulator) as engine:
        for client_id in ids.values():
            assert await engine.sync_client(client_id, trigger="manual") == "ok"
        # A client without access never gets data: it has no sheet and no line.
        refused = await local_id(settings, simulator.state.no_api_access_client_id)
        assert await engine.sync_client(refused, trigger="manual") == "failed"
    year = simulator.state.today.year - 1
    period = {"aar": year, "fra": 4, "til": 9}
    this_year = {"aar": year + 1, "fra": 1, "til": simulator.state.today.month}
    expected = {
        c.name: await api_rows(api, token, ids[c.id], period, compared=False) for c in with_data
    }
    # This year's sheets are compared with the same months of last year, as the page is.
    expected_now = {
        c.name: await api_rows(api, token, ids[c.id], this_year, compared=True) for c in with_data
    }
    # Inactive (as all of these are) and SEND DATA off (the API then hides the client): the
    # data is there, and the office's own people export it.
    await execute(
        settings, f"update client set send_data = false where id = {ids[with_data[0].id]}"
    )
    # A client whose latest sync was long ago does not have the year asked for: its line in
    # Oversikt says so, and it gets no sheet of zeros.
    old = companies[5]
    old_id = await local_id(settings, old.id)
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(old_id, trigger="manual") == "ok"
    await execute(
        settings, f"update client set synced_at = '2020-06-30 12:00:00' where id = {old_id}"
    )
    response = await client.get(f"/integrasjoner/{integration_id}/saldobalanse.xlsx", params=period)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    ascii_name, name = disposition_name(response.headers["content-disposition"])
    assert name == f"saldobalanse-Kunder-i-Bærum-{year}-04-09.xlsx"
    assert ascii_name == f"saldobalanse-Kunder-i-Baerum-{year}-04-09.xlsx"

    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames[0] == "Oversikt"
    sheets = book.sheetnames[1:]
    assert len(sheets) == len(with_data)  # one per client with data, none for the others
    assert len({s.casefold() for s in sheets}) == len(sheets)
    for sheet_name in sheets:
        assert 0 < len(sheet_name) <= 31 and not re.search(r"[\[\]:*?/\\]", sheet_name)
        assert not sheet_name.startswith("'") and not sheet_name.endswith("'")

    index = [list(row) for row in book["Oversikt"].iter_rows(min_row=8)]
    by_name = {row[1].value: row for row in index}
    assert set(by_name) == {c.name for c in [*with_data, old]}
    left_out = by_name.pop(old.name)
    assert left_out[2].value is None
    assert left_out[5].value == f"Ikke med: {year} er ikke hentet for klienten (har 2019, 2020)."
    # The overview in the sheets' order.
    assert [row[2].value for row in index if row[2].value is not None] == sheets
    label = Period(year, 4, 9).label
    for company in with_data:
        row = by_name[company.name]
        sheet_name = row[2].value
        assert sheet_name in sheets and sheet_name.startswith(company.organization_number)
        assert row[2].hyperlink.location == "'" + sheet_name.replace("'", "''") + "'!A1"
        table = sheet_table(book[sheet_name])
        assert table.facts["Klient"] == company.name and table.facts["Periode"] == label
        assert table.facts["Sammenlignet med"] == f"Ingen data for {year - 1}"
        assert table.heads == COLUMNS
        assert row[4].value == [kind for kind, _, _ in table.rows].count("konto")
        assert table.rows == expected[company.name], company.name
        on_screen = await screen(client, base_of(integration_id, ids[company.id]), period)
        assert (table.rows, None) == on_screen

    response = await client.get(
        f"/integrasjoner/{integration_id}/saldobalanse.xlsx", params=this_year
    )
    assert response.status_code == 200, response.text
    book = load_workbook(io.BytesIO(response.content))
    for company in with_data:
        [sheet_name] = [n for n in book.sheetnames if n.startswith(company.organization_number)]
        table = sheet_table(book[sheet_name])
        assert table.heads == compared_columns(year)
        assert table.facts["Sammenlignet med"] == Period(year, 1, this_year["til"]).label
        assert table.rows == expected_now[company.name], company.name
        on_screen = await screen(client, base_of(integration_id, ids[company.id]), this_year)
        assert (table.rows, year) == on_screen


async def test_the_integrations_form_offers_the_years_and_refuses_a_bad_period(
    client: AsyncTestClient, simulator: Simulator, synced: Synced
) -> None:
    url = f"/integrasjoner/{synced.integration_id}/saldobalanse"
    today = simulator.state.today
    fragment = await client.get(url, headers=htmx(client))
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="integration-exports"')
    assert f'action="{url}.xlsx"' in fragment.text
    assert f'<option value="{today.year}" selected>' in fragment.text
    assert f'<option value="{today.year - 1}">' in fragment.text
    assert "Last ned saldobalanse for alle klienter (Excel)" in fragment.text
    page = await client.get(url)  # without JavaScript: a page with the same form
    assert page.status_code == 200 and "<html" in page.text and f'action="{url}.xlsx"' in page.text

    refused = await client.get(f"{url}.xlsx", params={"aar": "2020", "fra": "1", "til": "2"})
    assert refused.status_code == 400
    assert "content-disposition" not in refused.headers
    text = html_text.unescape(refused.text)
    assert f"Saldobalansen finnes bare for {today.year - 1}–{today.year}" in text
    assert f'action="{url}.xlsx"' in refused.text  # the form is there to correct it
    assert '<option value="2" selected>' in refused.text  # keeping what could be read


async def test_an_integration_without_data_offers_no_download(
    client: AsyncTestClient,
) -> None:
    integration_id = await create_integration(client)
    url = f"/integrasjoner/{integration_id}/saldobalanse"
    fragment = await client.get(url, headers=htmx(client))
    assert "Ingen av klientene har data ennå." in fragment.text
    assert ".xlsx" not in fragment.text
    refused = await client.get(f"{url}.xlsx")
    assert refused.status_code == 400
    assert "Ingen av klientene har data ennå." in html_text.unescape(refused.text)


# -- the pieces ----------------------------------------------------------------------------


@pytest.mark.database_agnostic
def test_sheet_names_are_valid_and_unique() -> None:
    names = exports.SheetNames(reserved=["Oversikt"])
    long = "Bakken Bygg & Anlegg AS med et navn som er altfor langt"
    made = [
        names.add("917967733 " + long),
        names.add("917967733 " + long),
        names.add("917967733 " + long.upper()),  # Excel compares without case
        names.add("Kunde [A/S]: *hva?* \\ ok"),
        names.add("'Sitat'"),
        names.add("oversikt"),
        names.add("   "),
    ]
    assert made[0] == "917967733 Bakken Bygg & Anlegg"  # 31 characters, the space trimmed
    assert made[1] == "917967733 Bakken Bygg & Anl (2)"
    assert made[2] == "917967733 BAKKEN BYGG & ANL (3)"
    assert made[3] == "Kunde A S hva ok"
    assert made[4] == "Sitat"
    assert made[5] == "oversikt (2)"
    assert made[6] == "Klient"
    assert all(len(name) <= 31 for name in made)


@pytest.mark.database_agnostic
def test_file_names_keep_norwegian_letters_with_an_ascii_fallback() -> None:
    header = exports.content_disposition(
        exports.file_name('saldobalanse-Ærlig Økonomi/Å "AS"-2025-01-12.xlsx')
    )
    assert disposition_name(header) == (
        "saldobalanse-Aerlig-Okonomi-A-AS-2025-01-12.xlsx",
        "saldobalanse-Ærlig-Økonomi-Å-AS-2025-01-12.xlsx",
    )


@pytest.mark.database_agnostic
def test_csv_text_that_looks_like_a_formula_stays_text() -> None:
    heading = exports.Heading("Kontor", "Klient", "", Period(2025, 1, 1), None)
    report = TrialBalance(
        Period(2025, 1, 1),
        [BalanceRow(1920, '=HYPERLINK("x")', Decimal("1"), Decimal("0"), Decimal("1"))],
        Decimal("1"),
        Decimal("0"),
        Decimal("1"),
    )
    rows = list(
        csv.reader(
            io.StringIO(
                exports.client_csv(exports.ClientExport(heading, report)).decode("utf-8-sig")
            ),
            delimiter=";",
        )
    )
    assert rows[1] == ["", "Balanse (klasse 1–2)", "", "", ""]
    assert rows[2] == ["1920", '\'=HYPERLINK("x")', "1,00", "0,00", "1,00"]
    assert rows[3] == ["", "Sum klasse 1 Eiendeler", "1,00", "0,00", "1,00"]
    assert rows[-1] == ["", "Sum", "1,00", "0,00", "1,00"]


@pytest.mark.database_agnostic
async def test_excel_text_that_looks_like_a_formula_stays_text() -> None:
    heading = exports.Heading(
        "=Kontor", "Klient\x07", "", Period(2025, 1, 1), datetime(2025, 1, 2, tzinfo=UTC)
    )
    report = TrialBalance(
        Period(2025, 1, 1),
        [BalanceRow(1920, "=1+1", Decimal("-1234567.8"), Decimal("0"), Decimal("-1234567.8"))],
        Decimal("-1234567.8"),
        Decimal("0"),
        Decimal("-1234567.8"),
    )
    file = await exports.client_workbook(exports.ClientExport(heading, report))
    book = load_workbook(io.BytesIO(file.read()))
    file.close()
    sheet = book["Saldobalanse"]
    assert sheet["B2"].value == "=Kontor" and sheet["B2"].data_type == "s"
    assert sheet["B3"].value == "Klient"
    assert sheet["B11"].value == "=1+1" and sheet["B11"].data_type == "s"
    assert sheet["C11"].value == -1234567.8 and sheet["C11"].data_type == "n"
    assert sheet["B19"].value == exports.UNBALANCED


async def test_the_integration_page_partial_loads_the_form_by_itself(
    client: AsyncTestClient, settings: Settings, synced: Synced
) -> None:
    """Included in the integration page (which has not read the clients' years), the
    partial asks the export route for the form as soon as it is shown; a plain link
    without JavaScript."""
    from app import create_app

    engine = create_app(settings).template_engine
    assert engine is not None
    template = engine.get_template("partials/integration_exports.html")
    html = template.render(
        integration=dataclasses.make_dataclass("I", ["id"])(synced.integration_id)
    )
    url = f"/integrasjoner/{synced.integration_id}/saldobalanse"
    assert f'hx-get="{url}" hx-trigger="load" hx-target="this" hx-swap="outerHTML"' in html
    assert f'<a href="{url}">Last ned saldobalanse for alle klienter (Excel)</a>' in html
    loaded = await client.get(url, headers=htmx(client))
    assert 'id="integration-exports"' in html and 'id="integration-exports"' in loaded.text
    assert "hx-get" not in loaded.text  # the loaded form does not load itself again
