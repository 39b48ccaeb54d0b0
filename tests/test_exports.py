"""The saldobalanse taken away: the Excel file and the CSV of a client hold, cell for cell,
what the API hands out for the same period; the print view names whose books and when;
one workbook for all of an integration's clients; another office gets nothing."""

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
from tests.api_support import bearer, create_token
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

pytestmark = pytest.mark.anyio

api = api_support.api
no_settle_delay = api_support.no_settle_delay

CENT = Decimal("0.01")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS = ["Konto", "Navn", "Inngående saldo", "Bevegelse", "Utgående saldo"]
Line = tuple[int | None, str, Decimal, Decimal, Decimal]


@dataclasses.dataclass
class Synced:
    integration_id: int
    client_id: int
    company: Company

    @property
    def base(self) -> str:
        return f"/integrasjoner/{self.integration_id}/klienter/{self.client_id}"


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
    """Last year whole, one month of it, and this year so far."""
    today = simulator.state.today
    yield {"aar": today.year - 1, "fra": 1, "til": 12}
    yield {"aar": today.year - 1, "fra": 6, "til": 6}
    yield {"aar": today.year, "fra": 1, "til": today.month}


async def api_lines(
    api: AsyncTestClient, token: str, client_id: int, period: dict[str, int]
) -> tuple[list[Line], Line]:
    """The API's saldobalanse for the period, as rows of the export and its Sum row."""
    year, first, last = period["aar"], period["fra"], period["til"]
    response = await api.get(
        f"/api/v1/clients/{client_id}/balances",
        params={"from": f"{year}-{first:02d}", "to": f"{year}-{last:02d}"},
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    lines: list[Line] = [
        (
            line["account_number"],
            line["account_name"] if line["account_name"] is not None else "Ukjent konto",
            Decimal(line["opening"]),
            Decimal(line["movement"]),
            Decimal(line["closing"]),
        )
        for line in body["lines"]
    ]
    totals = body["totals"]
    total: Line = (
        None,
        "Sum",
        Decimal(totals["opening"]),
        Decimal(totals["movement"]),
        Decimal(totals["closing"]),
    )
    return lines, total


def number(value: object) -> Decimal:
    """A number cell read back (float or int) as the exact amount it holds."""
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    return Decimal(repr(value)).quantize(CENT)


def sheet_lines(sheet: Worksheet) -> tuple[dict[str, str], list[Line], Line]:
    """A client sheet's facts (label → value), its rows and its Sum row; asserts the layout
    and the number format of every amount on the way."""
    cells = [list(row) for row in sheet.iter_rows(values_only=False)]
    assert cells[0][0].value == "Saldobalanse"
    facts = {row[0].value: row[1].value for row in cells[1:6]}
    assert [c.value for c in cells[7][:5]] == COLUMNS
    body = cells[8:]
    assert body, "no Sum row"
    lines: list[Line] = []
    for row in body:
        if row[1].value in ("Sum",):
            break
        assert isinstance(row[0].value, int)
        lines.append(
            (row[0].value, row[1].value, *(number(c.value) for c in row[2:5]))  # type: ignore[arg-type]
        )
        assert all(c.number_format == "#,##0.00" for c in row[2:5])
    sum_row = body[len(lines)]
    assert sum_row[0].value is None and all(c.number_format == "#,##0.00" for c in sum_row[2:5])
    total: Line = (None, "Sum", *(number(c.value) for c in sum_row[2:5]))  # type: ignore[assignment]
    rest = body[len(lines) + 1 :]
    assert all(c.value is None for row in rest for c in row if c.column != 2), rest
    return facts, lines, total


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


async def test_excel_holds_the_apis_figures_cell_for_cell(
    client: AsyncTestClient,
    api: AsyncTestClient,
    simulator: Simulator,
    synced: Synced,
    token: str,
) -> None:
    company = synced.company
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
        facts, lines, total = sheet_lines(book["Saldobalanse"])
        expected_lines, expected_total = await api_lines(api, token, synced.client_id, period)
        assert expected_lines, period
        assert lines == expected_lines, period
        assert total == expected_total == (None, "Sum", *(Decimal("0.00"),) * 3)
        label = Period(period["aar"], period["fra"], period["til"]).label
        number = company.organization_number
        assert facts == {
            "Regnskapskontor": "Kontor A AS",
            "Klient": company.name,
            "Org.nr.": f"{number[:3]} {number[3:6]} {number[6:]}",
            "Periode": label,
            "Data per": await data_time(client, synced),
        }


async def test_csv_opens_in_norwegian_excel_with_the_apis_figures(
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
        raw = response.content
        assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads æøå right
        assert raw.count(b"\r\n") == raw.count(b"\n")  # every line ends CRLF
        text = raw.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))
        assert rows[0] == COLUMNS
        for row in rows[1:]:
            for amount in row[2:]:
                assert re.fullmatch(r"-?\d+,\d\d", amount), row  # comma, no thousands sep.

        def decimal(text: str) -> Decimal:
            return Decimal(text.replace(",", "."))

        lines = [
            (int(r[0]) if r[0] else None, r[1], *(decimal(a) for a in r[2:])) for r in rows[1:]
        ]
        expected_lines, expected_total = await api_lines(api, token, synced.client_id, period)
        assert lines == [*expected_lines, expected_total], period


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
    expected = {c.name: await api_lines(api, token, ids[c.id], period) for c in with_data}
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
        facts, lines, total = sheet_lines(book[sheet_name])
        assert facts["Klient"] == company.name and facts["Periode"] == label
        assert row[4].value == len(lines)
        assert expected[company.name][0]
        assert (lines, total) == expected[company.name], company.name


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
    assert rows[1] == ["1920", '\'=HYPERLINK("x")', "1,00", "0,00", "1,00"]
    assert rows[2] == ["", "Sum", "1,00", "0,00", "1,00"]


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
    assert sheet["B9"].value == "=1+1" and sheet["B9"].data_type == "s"
    assert sheet["C9"].value == -1234567.8 and sheet["C9"].data_type == "n"
    assert sheet["B11"].value == exports.UNBALANCED


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
