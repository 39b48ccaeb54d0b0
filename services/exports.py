"""The saldobalanse as files an accountant takes away: an Excel workbook (`.xlsx`, openpyxl)
and a CSV that Norwegian Excel opens as it is, for one client; one workbook with a sheet per
client for all of an integration's clients with data; and the facts a print view shows.

The figures are the client page's and the API's (`balances.trial_balance_report`) for a
period read and checked as the page reads it (`balances.parse_period`, the same Norwegian
errors), in the page's shape (`balances.structure`): balance and result accounts apart, a
sum per NS 4102 class, Sum balanse, Årsresultat, Sum, and beside this year the same months
of the year before (its movement, its balance out and the change) whenever that year is
stored for the client. A row that is not an account has no account number and its label in
the name column. Amounts stay Decimal until they are written: Excel cells get the Decimal
itself (a number cell, so the sheet can add them up; Excel holds 15 significant digits, øre
on amounts up to 10 000 milliarder), the CSV its exact text with a decimal comma.

The integration's workbook is written in openpyxl's write-only mode: each client's sheet
goes to a temporary file as soon as its figures are read, and the finished workbook to
another, which the response streams; memory stays flat however many clients there are."""

from __future__ import annotations

import csv
import io
import re
import tempfile
import unicodedata
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO
from urllib.parse import quote
from zoneinfo import ZoneInfo

import anyio.to_thread
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration
from services import balances
from services import integrations as integration_service
from services.balances import (
    CENT,
    Compared,
    Offer,
    Period,
    PeriodError,
    Structured,
    TrialBalance,
)
from services.saft import history as saft_history

OSLO = ZoneInfo("Europe/Oslo")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"
COLUMNS = ("Konto", "Navn", "Inngående saldo", "Bevegelse", "Utgående saldo")
COMPARED_COLUMNS = (
    "Bevegelse i fjor ({year})",
    "Utgående saldo i fjor ({year})",
    "Endring i utgående saldo",
)
UNKNOWN_ACCOUNT = "Ukjent konto"  # as the client page writes an account not in the chart
AMOUNT_FORMAT = "#,##0.00"  # Excel shows it with the reader's separators: 1 234 567,89
INDEX_SHEET = "Oversikt"
NOT_SYNCED = "Saldobalansen finnes ikke ennå — klienten er ikke synkronisert."
NOT_IMPORTED = "Saldobalansen finnes ikke ennå — ingen fil er importert for klienten."
NO_CLIENT_DATA = "Ingen av klientene har data ennå."
UNBALANCED = "Saldobalansen går ikke i null: dataene kan være ufullstendige."
CHUNK = 64 * 1024

# Excel refuses these in a sheet's name; a name is at most 31 characters, not blank, does
# not begin or end with an apostrophe, and "History" is Excel's own.
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\\x00-\x1f]")
SHEET_NAME_MAX = 31
_RESERVED_SHEETS = {"history", INDEX_SHEET.casefold()}
# A cell of a CSV whose text begins so is read by spreadsheets as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FILE_FORBIDDEN = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
_ASCII_FOR = str.maketrans({"æ": "ae", "Æ": "Ae", "ø": "o", "Ø": "O", "å": "a", "Å": "A"})


# -- what is exported ----------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    """The facts above the figures: whose books, which period, as of when."""

    office: str
    client: str
    org_number: str  # as stored: nine digits, or "" for a client without one
    period: Period
    synced_at: datetime | None  # the client's latest sync or import: the data's time

    @property
    def org_label(self) -> str:
        return org_number_label(self.org_number)

    @property
    def data_time(self) -> str:
        return local_time(self.synced_at)


@dataclass(frozen=True)
class ClientExport:
    heading: Heading
    report: TrialBalance
    # The same months a year before, when that year is stored for the client.
    previous: TrialBalance | None = None

    @property
    def structure(self) -> Structured:
        return balances.structure(self.report, self.previous)

    @property
    def compared_with(self) -> str:
        """What the year-before columns hold, said in the facts above the table."""
        if self.previous is not None:
            return self.previous.period.label
        return f"Ingen data for {self.heading.period.year - 1}"


async def reports_for(
    db: AsyncSession, client_id: int, period: Period, offer: Offer
) -> tuple[TrialBalance, TrialBalance | None]:
    """The period's saldobalanse and, when the client has that year, the same months a
    year before: what the client page shows with «Sammenlign med samme periode i fjor»."""
    report = await balances.trial_balance_report(db, client_id, period)
    before = balances.previous_period(period)
    if before.year not in offer.years:
        return report, None
    return report, await balances.trial_balance_report(db, client_id, before)


def org_number_label(value: str) -> str:
    """934228391 → '934 228 391', as Brønnøysund writes it (the page's org_number filter)."""
    return f"{value[:3]} {value[3:6]} {value[6:]}" if len(value) == 9 and value.isdigit() else value


def local_time(moment: datetime | None) -> str:
    """'12.03.2025 kl. 14:05' in Oslo; stored moments are UTC (naive ones from SQLite)."""
    if moment is None:
        return "aldri"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(OSLO).strftime("%d.%m.%Y kl. %H:%M")


async def client_offer(
    db: AsyncSession, integration: Integration, client: Client, years: int
) -> Offer:
    """The years a client's saldobalanse is there for and its default period, as the client
    page and the API count them."""
    assert client.id is not None
    if integration_service.takes_files(integration):
        return await saft_history.offer(db, client.id)
    return balances.offer(client.synced_at, years)


async def client_export(
    db: AsyncSession,
    office: str,
    integration: Integration,
    client: Client,
    years: int,
    year: str | None,
    first_month: str | None,
    last_month: str | None,
) -> ClientExport:
    """A client's saldobalanse for the period the parameters name (the client page's aar,
    fra and til). Raises PeriodError with the page's Norwegian message."""
    assert client.id is not None
    if client.synced_at is None:
        takes_files = integration_service.takes_files(integration)
        raise PeriodError(NOT_IMPORTED if takes_files else NOT_SYNCED)
    offer = await client_offer(db, integration, client, years)
    period = balances.parse_period(
        year, first_month, last_month, years=offer.years, default=offer.default
    )
    report, previous = await reports_for(db, client.id, period, offer)
    return ClientExport(heading_of(office, client, period), report, previous)


def heading_of(office: str, client: Client, period: Period) -> Heading:
    return Heading(office, client.name, client.org_number, period, client.synced_at)


# -- file names ----------------------------------------------------------------------------


def period_slug(period: Period) -> str:
    """'2025-03' for one month, '2025-01-12' for January through December."""
    if period.first_month == period.last_month:
        return f"{period.year}-{period.first_month:02d}"
    return f"{period.year}-{period.first_month:02d}-{period.last_month:02d}"


def client_file_name(heading: Heading, extension: str) -> str:
    """saldobalanse-934228391-2025-01-12.xlsx; the client's name where it has no org number."""
    who = heading.org_number or heading.client
    return file_name(f"saldobalanse-{who}-{period_slug(heading.period)}.{extension}")


def integration_file_name(integration: Integration, period: Period) -> str:
    label = integration.description or integration.erp_company_name or "klienter"
    return file_name(f"saldobalanse-{label}-{period_slug(period)}.xlsx")


def file_name(raw: str) -> str:
    """A name every system can save: no path or reserved characters, no spaces, not long."""
    cleaned = _FILE_FORBIDDEN.sub("-", raw)
    cleaned = re.sub(r"\s+", "-", cleaned.strip())
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    stem, dot, extension = cleaned.rpartition(".")
    return stem[:150].rstrip("-. ") + dot + extension


def content_disposition(name: str) -> str:
    """attachment with an ASCII name for old clients and the real one (æøå) in RFC 5987's
    filename*, which every current browser prefers."""
    ascii_name = unicodedata.normalize("NFKD", name.translate(_ASCII_FOR))
    ascii_name = ascii_name.encode("ascii", "ignore").decode()
    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name)
    ascii_name = re.sub(r"-{2,}", "-", ascii_name).strip("-") or "saldobalanse"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


# -- the rows of the table, as the page has them --------------------------------------------


class RowKind:
    SECTION = "del"  # Balanse (klasse 1–2), …: a heading, no amounts
    ACCOUNT = "konto"
    SUM = "sum"  # a class's sum, Sum balanse, Årsresultat, Sum


@dataclass(frozen=True)
class TableRow:
    kind: str
    number: int | None  # the account's; None on every other row
    label: str  # the account's name, or the heading's or the sum's label
    amounts: tuple[Decimal, ...]  # as the columns (none on a heading)


def columns(export: ClientExport) -> tuple[str, ...]:
    """The column names of the page: the year before's with its year, when compared."""
    if export.previous is None:
        return COLUMNS
    year = export.previous.period.year
    return (*COLUMNS, *(name.format(year=year) for name in COMPARED_COLUMNS))


def table_rows(structure: Structured) -> list[TableRow]:
    """Every row of the grouped saldobalanse, top to bottom, as the client page shows it."""
    compared = structure.previous is not None

    def amounts(figures: Compared) -> tuple[Decimal, ...]:
        now = figures.now
        shown = (now.opening, now.movement, now.closing)
        if not compared:
            return shown
        assert figures.before is not None and figures.change is not None
        return (*shown, figures.before.movement, figures.before.closing, figures.change)

    def total(subtotal: balances.Subtotal) -> TableRow:
        label = f"{subtotal.label} {subtotal.note}" if subtotal.note else subtotal.label
        return TableRow(RowKind.SUM, None, label, amounts(subtotal))

    rows: list[TableRow] = []
    for section in structure.sections:
        rows.append(TableRow(RowKind.SECTION, None, f"{section.title} ({section.scope})", ()))
        for group in section.groups:
            for line in group.lines:
                name = UNKNOWN_ACCOUNT if line.name is None else line.name
                rows.append(TableRow(RowKind.ACCOUNT, line.number, name, amounts(line)))
            rows.append(total(group.total))
        rows.extend(total(subtotal) for subtotal in section.totals)
    rows.append(total(structure.total))
    return rows


def result_line(export: ClientExport) -> str:
    """The page's sentence under the table: the result in words, this year and last."""
    structure, period = export.structure, export.heading.period
    result = structure.result
    words = balances.result_in_words
    text = (
        f"Årsresultat for {period.label} (bevegelse): {words(result.now.movement)}. "
        f"Hittil i år ved utgangen av {balances.MONTHS[period.last_month - 1]}: "
        f"{words(result.now.closing)}."
    )
    if result.before is not None:
        text += f" Samme periode i fjor: {words(result.before.movement)}."
    return text


# -- CSV -----------------------------------------------------------------------------------


def csv_amount(amount: Decimal) -> str:
    """-1234567.8 → '-1234567,80': a decimal comma, no thousands separator."""
    return format(amount.quantize(CENT), "f").replace(".", ",")


def csv_text(value: str) -> str:
    """Text a spreadsheet would take for a formula is kept as text by a leading apostrophe."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def client_csv(export: ClientExport) -> bytes:
    """The saldobalanse as Norwegian Excel opens a CSV by double-click: UTF-8 with BOM,
    semicolons, decimal comma, CRLF; the columns and rows of the page, where a heading or a
    sum has an empty Konto and its label under Navn (a heading, no amounts either)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    heads = columns(export)
    writer.writerow(heads)
    for row in table_rows(export.structure):
        amounts = [csv_amount(a) for a in row.amounts] or [""] * (len(heads) - 2)
        number = "" if row.number is None else row.number
        writer.writerow((number, csv_text(row.label), *amounts))
    return out.getvalue().encode("utf-8-sig")


# -- Excel ---------------------------------------------------------------------------------

_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=14)
_RIGHT = Alignment(horizontal="right")
_WIDTHS = (16, 44, 19, 19, 19, 21, 24, 24)  # A: the facts' labels above, the numbers below
_INDEX_WIDTHS = (13, 40, 34, 19, 9, 48)


def _text(sheet: WriteOnlyWorksheet, value: str, font: Font | None = None) -> WriteOnlyCell:
    """A text cell that stays text: openpyxl takes a string beginning with '=' for a formula,
    and refuses control characters, both possible in a name from an accounting system."""
    cell = WriteOnlyCell(sheet, value=_clean(value))
    cell.data_type = "s"
    if font is not None:
        cell.font = font
    return cell


def _name(sheet: WriteOnlyWorksheet, name: str) -> str | WriteOnlyCell:
    """An account's name: plain text, or a text cell where openpyxl would see a formula."""
    text = _clean(name)
    return _text(sheet, text) if text.startswith("=") else text


def _clean(text: str) -> str:
    """Without the control characters XML cannot hold."""
    return ILLEGAL_CHARACTERS_RE.sub("", text)


def _amount(sheet: WriteOnlyWorksheet, value: Decimal, font: Font | None = None) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value.quantize(CENT))
    cell.number_format = AMOUNT_FORMAT
    if font is not None:
        cell.font = font
    return cell


def _prepare(sheet: WriteOnlyWorksheet, header_row: int, widths: Sequence[int]) -> None:
    """Column widths, frozen headings and print setup: a write-only sheet takes them before
    its first row."""
    for column, width in zip("ABCDEFGH", widths, strict=False):
        sheet.column_dimensions[column].width = width
    sheet.freeze_panes = f"A{header_row + 1}"
    sheet.print_title_rows = f"{header_row}:{header_row}"
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True


HEADER_ROW = 9  # the row of the column names in a client's sheet


def write_client_sheet(sheet: WriteOnlyWorksheet, export: ClientExport) -> None:
    """Title and facts, a blank row, the column names (row HEADER_ROW), then the page's rows
    (headings and sums in bold, with no account number), a blank row and the result in
    words; a note under it when the totals are not zero."""
    heading, report = export.heading, export.report
    _prepare(sheet, HEADER_ROW, _WIDTHS)
    facts = (
        ("Regnskapskontor", heading.office),
        ("Klient", heading.client),
        ("Org.nr.", heading.org_label),
        ("Periode", heading.period.label),
        ("Sammenlignet med", export.compared_with),
        ("Data per", heading.data_time),
    )
    sheet.append([_text(sheet, "Saldobalanse", _TITLE)])
    for label, value in facts:
        sheet.append([_text(sheet, label, _BOLD), _text(sheet, value)])
    sheet.append([])
    heads = columns(export)
    sheet.append([_heading_cell(sheet, name, index) for index, name in enumerate(heads)])
    for row in table_rows(export.structure):
        if row.kind == RowKind.ACCOUNT:
            cells: list[object] = [row.number, _name(sheet, row.label)]
            cells += [_amount(sheet, a) for a in row.amounts]
        else:
            cells = [None, _text(sheet, row.label, _BOLD)]
            cells += [_amount(sheet, a, _BOLD) for a in row.amounts]
        sheet.append(cells)
    sheet.append([])
    sheet.append([None, _text(sheet, result_line(export))])
    if not report.balanced:
        sheet.append([None, _text(sheet, UNBALANCED)])


def _heading_cell(sheet: WriteOnlyWorksheet, name: str, index: int) -> WriteOnlyCell:
    cell = _text(sheet, name, _BOLD)
    if index != 1:  # over numbers, which Excel aligns right
        cell.alignment = _RIGHT
    return cell


def _new_workbook(title: str) -> Workbook:
    book = Workbook(write_only=True)
    book.properties.creator = "ERP-integrasjon"
    book.properties.title = _clean(title)
    return book


async def _saved(book: Workbook) -> IO[bytes]:
    """The workbook in a temporary file (gone when closed), read from its start. Zipping
    runs off the event loop; the sheets were written on it a client at a time (about 10 ms
    for 200 accounts), between the reads of their figures."""
    target = tempfile.TemporaryFile()  # noqa: SIM115 (closed by chunks(), after the response)
    try:
        await anyio.to_thread.run_sync(book.save, target)
        target.seek(0)
    except BaseException:
        target.close()
        raise
    return target


async def client_workbook(export: ClientExport) -> IO[bytes]:
    book = _new_workbook(f"Saldobalanse {export.heading.client} {export.heading.period.label}")
    write_client_sheet(book.create_sheet("Saldobalanse"), export)
    return await _saved(book)


async def chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    """A saved workbook's bytes for a streamed response; the file is closed (and so
    deleted) when the last chunk is sent or the download is abandoned."""
    try:
        while chunk := file.read(CHUNK):
            yield chunk
    finally:
        file.close()


# -- all of an integration's clients -------------------------------------------------------


@dataclass(frozen=True)
class PlannedClient:
    client: Client
    sheet: str | None  # None: the period's year is not among the client's years
    offer: Offer


@dataclass(frozen=True)
class IntegrationPlan:
    period: Period
    clients: list[PlannedClient]  # those with data, in the client table's order


async def clients_with_data(db: AsyncSession, integration: Integration) -> list[Client]:
    """The integration's clients that have been synced or imported, whatever their
    switches (SEND DATA concerns the API, ACTIVE future syncs: the data is there)."""
    rows = await db.exec(
        select(Client)
        .where(
            col(Client.integration_id) == integration.id,
            col(Client.synced_at).is_not(None),
        )
        .order_by(col(Client.sort_key), col(Client.id))
    )
    return list(rows.all())


@dataclass(frozen=True)
class IntegrationOffer:
    clients: list[tuple[Client, Offer]]  # those with data, each with its own offer
    offer: Offer | None  # what the integration's form offers; None: no client has data


async def integration_offer(
    db: AsyncSession, integration: Integration, years: int
) -> IntegrationOffer:
    """The clients with data and their offers, and for the integration's form every year
    any of them has, with January through the newest default month (the year so far)."""
    clients = await clients_with_data(db, integration)
    offers = [(client, await client_offer(db, integration, client, years)) for client in clients]
    if not offers:
        return IntegrationOffer([], None)
    newest = max((offer.default for _, offer in offers), key=lambda p: (p.year, p.last_month))
    union = sorted({year for _, offer in offers for year in offer.years})
    return IntegrationOffer(offers, Offer(union, Period(newest.year, 1, newest.last_month)))


async def integration_plan(
    db: AsyncSession,
    integration: Integration,
    years: int,
    year: str | None,
    first_month: str | None,
    last_month: str | None,
) -> IntegrationPlan:
    """The period (checked as the client page checks it, against the years any client
    has) and a unique, valid sheet name for each client that has that year."""
    offered = await integration_offer(db, integration, years)
    if offered.offer is None:
        raise PeriodError(NO_CLIENT_DATA)
    default = offered.offer.default
    period = balances.parse_period(
        year, first_month, last_month, years=offered.offer.years, default=default
    )
    names = SheetNames(reserved=_RESERVED_SHEETS)
    planned = [
        PlannedClient(
            client,
            names.add(sheet_name(client)) if period.year in offer.years else None,
            offer,
        )
        for client, offer in offered.clients
    ]
    return IntegrationPlan(period, planned)


def sheet_name(client: Client) -> str:
    """Org number and as much of the name as fits: '934228391 Bærum Bygg og Anleg'."""
    return " ".join(filter(None, (client.org_number, client.name)))


class SheetNames:
    """Valid, unique sheet names (Excel compares them without case)."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self.taken = {name.casefold() for name in reserved}

    def add(self, wanted: str) -> str:
        base = _SHEET_FORBIDDEN.sub(" ", wanted)
        base = " ".join(base.split()).strip("'").strip() or "Klient"
        base = base[:SHEET_NAME_MAX].rstrip("' ")
        name, number = base, 1
        while name.casefold() in self.taken:
            number += 1
            suffix = f" ({number})"
            name = base[: SHEET_NAME_MAX - len(suffix)].rstrip("' ") + suffix
        self.taken.add(name.casefold())
        return name


@dataclass(frozen=True)
class IndexLine:
    client: Client
    sheet: str | None
    accounts: int
    note: str


async def integration_workbook(
    db: AsyncSession, office: str, integration_label: str, plan: IntegrationPlan
) -> IO[bytes]:
    """Oversikt first (a line per client with data, linked to its sheet), then a sheet per
    client with the period's year, each written and closed before the next is read."""
    period = plan.period
    book = _new_workbook(f"Saldobalanse {integration_label} {period.label}")
    index = book.create_sheet(INDEX_SHEET)
    lines: list[IndexLine] = []
    for planned in plan.clients:
        client = planned.client
        assert client.id is not None
        if planned.sheet is None:
            held = ", ".join(map(str, planned.offer.years))
            note = f"Ikke med: {period.year} er ikke hentet for klienten (har {held})."
            lines.append(IndexLine(client, None, 0, note))
            continue
        report, previous = await reports_for(db, client.id, period, planned.offer)
        sheet = book.create_sheet(planned.sheet)
        export = ClientExport(heading_of(office, client, period), report, previous)
        write_client_sheet(sheet, export)
        sheet.close()  # its rows are on disk; nothing of it stays in memory
        note = "" if report.balanced else "Går ikke i null"
        if not report.rows:
            note = "Ingen saldoer eller bevegelser i perioden"
        lines.append(IndexLine(client, planned.sheet, len(report.rows), note))
    write_index(index, office, integration_label, period, lines)
    return await _saved(book)


INDEX_COLUMNS = ("Org.nr.", "Klient", "Ark", "Data per", "Kontoer", "Merknad")
INDEX_HEADER_ROW = 7


def write_index(
    sheet: WriteOnlyWorksheet,
    office: str,
    integration_label: str,
    period: Period,
    lines: Sequence[IndexLine],
) -> None:
    _prepare(sheet, INDEX_HEADER_ROW, _INDEX_WIDTHS)
    sheet.append([_text(sheet, "Saldobalanse for alle klienter", _TITLE)])
    made = local_time(datetime.now(UTC))
    for label, value in (
        ("Regnskapskontor", office),
        ("Integrasjon", integration_label),
        ("Periode", period.label),
        ("Laget", made),
    ):
        sheet.append([_text(sheet, label, _BOLD), _text(sheet, value)])
    sheet.append([])
    sheet.append([_text(sheet, name, _BOLD) for name in INDEX_COLUMNS])
    for line in lines:
        link: WriteOnlyCell | None = None
        if line.sheet is not None:
            link = _text(sheet, line.sheet)
            quoted = line.sheet.replace("'", "''")
            link.hyperlink = Hyperlink(ref="", location=f"'{quoted}'!A1", display=line.sheet)
            link.style = "Hyperlink"
        sheet.append(
            [
                _text(sheet, org_number_label(line.client.org_number)),
                _text(sheet, line.client.name),
                link,
                _text(sheet, local_time(line.client.synced_at)),
                line.accounts if line.sheet is not None else None,
                _text(sheet, line.note) if line.note else None,
            ]
        )
