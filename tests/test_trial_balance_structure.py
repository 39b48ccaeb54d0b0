"""The saldobalanse as an accountant reads it (issue 19, "Comparison and structure"): balance
and result accounts apart, a sum per NS 4102 account class, Sum balanse, Årsresultat, the
year-end dispositions on their own, and the same months of the year before beside the
period when asked. Every figure the page shows is compared with one computed here from the
system's own books (the Tripletex and PowerOffice Go simulators, a SAF-T file written by
the test) and, for the year before, with what the API hands out — for Tripletex, PowerOffice
Go and SAF-T clients alike."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from services.balances import BalanceRow, Period, TrialBalance, format_amount, structure
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.settings import Settings
from services.sync.engine import SyncEngine, SyncSettings
from simulators.tripletex.model import Company
from tests import api_support
from tests import test_poweroffice_connector as connector_tests
from tests.api_support import bearer, create_token
from tests.conftest import OfficeDb, Simulator, create_integration, htmx, query
from tests.saft_files import Books, write_saft
from tests.sync_support import sync_engine
from tests.test_client_page import amount, local_id, next_month, text_of
from tests.test_poweroffice_connector import TODAY, World, _expected
from tests.test_poweroffice_sync import onboard
from tests.test_saft_web import create_saft_integration, upload

pytestmark = pytest.mark.anyio
api = api_support.api
no_settle_delay = api_support.no_settle_delay
world = connector_tests.world

ZERO = Decimal("0.00")
Figures = tuple[Decimal, Decimal, Decimal]  # in, movement, out
Row = tuple[str, str, tuple[Decimal, ...]]  # kind, label, the amounts shown

# NS 4102, as the accountant expects the subtotals named.
CLASSES = {
    1: "Eiendeler",
    2: "Egenkapital og gjeld",
    3: "Salgs- og driftsinntekt",
    4: "Varekostnad",
    5: "Lønnskostnad",
    6: "Andre driftskostnader",
    7: "Andre driftskostnader",
    8: "Finansposter og skatt",
}
RESULT = "Årsresultat (negativt tall = overskudd)"
DISPOSITIONS = "Sum overføringer og disponeringer"


# -- reading the page ----------------------------------------------------------------------


def shown_rows(page: str) -> list[Row]:
    """Every row of the saldobalanse below its column heads, top to bottom: section heads
    ("del"), accounts ("konto", "1920 Bankinnskudd") and sums ("sum", "Sum klasse 1 …"),
    each with every amount it shows."""
    table = re.search(
        r'<div id="trial-balance".*?<table class="ledger grouped.*?</table>', page, re.S
    )
    assert table, page
    body = table.group(0).split("</thead>", 1)[1]
    rows: list[Row] = []
    for attributes, cells in re.findall(r"<tr([^>]*)>(.*?)</tr>", body, re.S):
        amounts = tuple(
            amount(value) for value in re.findall(r'<td class="amount[^"]*">(.*?)</td>', cells)
        )
        if "section-head" in attributes:
            rows.append(("del", text_of(cells), amounts))
        elif "data-account" in attributes:
            rows.append(("konto", text_of(cells.split('<td class="amount', 1)[0]), amounts))
        else:
            rows.append(("sum", text_of(cells.split('<td class="amount', 1)[0]), amounts))
    return rows


def column_heads(page: str) -> list[str]:
    head = re.search(r'<div id="trial-balance".*?<thead>(.*?)</thead>', page, re.S)
    assert head, page
    return [text_of(cell) for cell in re.findall(r'<th scope="col"[^>]*>(.*?)</th>', head[1])]


# -- what the page must show, computed here ------------------------------------------------


def class_of(number: int) -> int:
    """NS 4102: the first digit, in a 4-digit chart (1920) and a 5-digit one (19200)."""
    return number // 10 ** (len(str(number)) - 1)


def disposition(number: int) -> bool:
    """88–89: årsresultat, overføringer og disponeringer (year-end closing)."""
    return number // 10 ** (len(str(number)) - 2) in (88, 89)


def column_sum(rows: Iterable[tuple[Decimal, ...]], width: int) -> tuple[Decimal, ...]:
    total = [ZERO] * width
    for row in rows:
        assert len(row) == width
        total = [t + value for t, value in zip(total, row, strict=True)]
    return tuple(total)


def expected_rows(
    now: Mapping[int, Figures],
    names: Mapping[int, str],
    before: Mapping[int, Figures] | None = None,
) -> list[Row]:
    """The grouped saldobalanse from per-account figures: each account with any figure in
    either period, a sum per class of its rows, Sum balanse of the balance classes' rows,
    Årsresultat of the result rows outside 88–89, those on their own, Sum of every row."""
    compared = before is not None
    width = 6 if compared else 3
    numbers = sorted(now.keys() | (before or {}).keys())

    def amounts(number: int) -> tuple[Decimal, ...]:
        current = now.get(number, (ZERO, ZERO, ZERO))
        if before is None:
            return current
        old = before.get(number, (ZERO, ZERO, ZERO))
        return (*current, old[1], old[2], current[2] - old[2])

    def accounts(chosen: list[int]) -> list[Row]:
        return [("konto", f"{n} {names.get(n, 'Ukjent konto')}", amounts(n)) for n in chosen]

    rows: list[Row] = []
    for title, classes, total in (
        ("Balanse (klasse 1–2)", (1, 2), "Sum balanse"),
        ("Resultat (klasse 3–8)", (3, 4, 5, 6, 7, 8), RESULT),
    ):
        rows.append(("del", title, ()))
        chosen = [n for n in numbers if class_of(n) in classes and not disposition(n)]
        for number in classes:
            members = [n for n in chosen if class_of(n) == number]
            if members:
                rows += accounts(members)
                subtotal = column_sum((amounts(n) for n in members), width)
                rows.append(("sum", f"Sum klasse {number} {CLASSES[number]}", subtotal))
        rows.append(("sum", total, column_sum((amounts(n) for n in chosen), width)))
    closing = [n for n in numbers if disposition(n)]
    if closing:
        rows.append(("del", "Overføringer og disponeringer (kontoer 88–89, årsoppgjøret)", ()))
        rows += accounts(closing)
        rows.append(("sum", DISPOSITIONS, column_sum((amounts(n) for n in closing), width)))
    others = [n for n in numbers if class_of(n) not in CLASSES]
    if others:
        rows.append(("del", "Andre kontoer (utenfor klasse 1–8)", ()))
        rows += accounts(others)
        rows.append(("sum", "Sum andre kontoer", column_sum((amounts(n) for n in others), width)))
    rows.append(("sum", "Sum", column_sum((amounts(n) for n in numbers), width)))
    return rows


def sum_row(rows: list[Row], label: str) -> tuple[Decimal, ...]:
    [found] = [amounts for kind, name, amounts in rows if kind == "sum" and name == label]
    return found


async def api_year(
    api: AsyncTestClient, token: str, client_id: int, period: Period
) -> tuple[dict[int, Figures], dict[int, str]]:
    """The API's saldobalanse for a period: figures and names per account."""
    response = await api.get(
        f"/api/v1/clients/{client_id}/balances",
        params={
            "from": f"{period.year}-{period.first_month:02d}",
            "to": f"{period.year}-{period.last_month:02d}",
        },
        headers=bearer(token),
    )
    assert response.status_code == 200, response.text
    lines = response.json()["lines"]
    figures = {
        line["account_number"]: (
            Decimal(line["opening"]),
            Decimal(line["movement"]),
            Decimal(line["closing"]),
        )
        for line in lines
    }
    return figures, {line["account_number"]: line["account_name"] for line in lines}


def params(period: Period, compare: bool) -> dict[str, str]:
    chosen = {
        "aar": str(period.year),
        "fra": str(period.first_month),
        "til": str(period.last_month),
    }
    return chosen | ({"sammenlign": "1"} if compare else {})


# -- the grouping itself -------------------------------------------------------------------


def report(period: Period, rows: dict[int, Figures], names: Mapping[int, str]) -> TrialBalance:
    lines = [BalanceRow(n, names.get(n), *rows[n]) for n in sorted(rows)]
    return TrialBalance(
        period,
        lines,
        sum((r.opening for r in lines), ZERO),
        sum((r.movement for r in lines), ZERO),
        sum((r.closing for r in lines), ZERO),
    )


def test_classes_come_from_the_first_digit_and_every_sum_is_a_sum_of_rows() -> None:
    """A 5-digit chart, a closed year's disposition, an account outside the classes and one
    only last year: grouped as NS 4102 says, and each sum the exact sum of its rows."""
    d = Decimal
    now = {
        19200: (d("1000.10"), d("-250.05"), d("750.05")),
        15000: (d("0.00"), d("400.00"), d("400.00")),
        20500: (d("-1000.10"), d("0.00"), d("-1000.10")),
        30000: (d("0.00"), d("-900.00"), d("-900.00")),
        50000: (d("0.00"), d("650.05"), d("650.05")),
        80500: (d("0.00"), d("-0.01"), d("-0.01")),
        89600: (d("0.00"), d("100.00"), d("100.00")),
        99999: (d("0.00"), d("0.01"), d("0.01")),
    }
    before = {
        19200: (d("10.00"), d("5.00"), d("15.00")),
        63000: (d("0.00"), d("-5.00"), d("-5.00")),  # only last year
        20500: (d("-10.00"), d("0.00"), d("-10.00")),
    }
    names = {n: f"Konto {n}" for n in now.keys() | before.keys()}
    period = Period(2025, 1, 6)
    grouped = structure(report(period, now, names), report(Period(2024, 1, 6), before, names))

    assert grouped.previous == Period(2024, 1, 6)
    assert [s.title for s in grouped.sections] == [
        "Balanse",
        "Resultat",
        "Overføringer og disponeringer",
        "Andre kontoer",
    ]
    balance, result, closing, others = grouped.sections
    assert [g.total.label for g in balance.groups] == [
        "Sum klasse 1 Eiendeler",
        "Sum klasse 2 Egenkapital og gjeld",
    ]
    assert [[line.number for line in g.lines] for g in balance.groups] == [[15000, 19200], [20500]]
    assert [g.total.label for g in result.groups] == [
        "Sum klasse 3 Salgs- og driftsinntekt",
        "Sum klasse 5 Lønnskostnad",
        "Sum klasse 6 Andre driftskostnader",
        "Sum klasse 8 Finansposter og skatt",
    ]
    assert [line.number for line in closing.groups[0].lines] == [89600]
    assert [line.number for line in others.groups[0].lines] == [99999]
    # Årsresultat: classes 3–8 without 88–89, in the ledger's sign (negative: a profit).
    assert result.totals[0].now.movement == d("-900.00") + d("650.05") - d("0.01")
    assert grouped.result.now.movement == d("-249.96")
    assert result.totals[0].before is not None and result.totals[0].before.movement == d("-5")
    # Sum: every row, so the balanced ledger's 0,00 is the groups' sums added up.
    assert grouped.total.now.closing == sum((v[2] for v in now.values()), ZERO)
    assert balance.totals[0].now.closing + grouped.result.now.closing + d("100.00") + d("0.01") == (
        grouped.total.now.closing
    )
    line = next(line for line in result.groups[2].lines if line.number == 63000)
    assert line.now.closing == ZERO and line.change == d("5.00")
    assert all(isinstance(v, Decimal) for v in (grouped.total.now.movement, line.change))
    # Without a comparison there is nothing of last year.
    alone = structure(report(period, now, names))
    assert alone.previous is None and alone.total.before is None and alone.total.change is None
    assert 63000 not in {line.number for line in alone.lines}


def test_the_result_is_said_in_words() -> None:
    from services.balances import result_in_words

    assert result_in_words(Decimal("-1500.00")) == f"overskudd på {format_amount(Decimal(1500))}"
    assert result_in_words(Decimal("200.5")) == "underskudd på 200,50"
    assert result_in_words(ZERO).startswith("0,00")


# -- Tripletex -----------------------------------------------------------------------------


def tripletex_year(
    simulator: Simulator, company: Company, period: Period
) -> tuple[dict[int, Figures], dict[int, str]]:
    """Tripletex's own saldobalanse (the simulator's balanceSheet) for the period."""
    start = date(period.year, period.first_month, 1)
    end = next_month(period.year, period.last_month)
    sheet = [
        row
        for row in simulator.state.balance_sheet(company.id, start, end)
        if row.balance_in or row.balance_change
    ]
    figures = {r.account.number: (r.balance_in, r.balance_change, r.balance_out) for r in sheet}
    return figures, {r.account.number: r.account.name for r in sheet}


@pytest.fixture
async def tripletex_client(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> tuple[str, int, Company]:
    integration_id = await create_integration(client, description="Sammenligning")
    company = simulator.state.clients_of("demo-regnskapskontor")[0]
    client_id = await local_id(settings, company.id)
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "ok"
    return f"/integrasjoner/{integration_id}/klienter/{client_id}/oversikt", client_id, company


async def test_tripletex_grouped_and_compared_with_last_year_to_the_ore(
    client: AsyncTestClient,
    api: AsyncTestClient,
    simulator: Simulator,
    tripletex_client: tuple[str, int, Company],
) -> None:
    url, client_id, company = tripletex_client
    token = await create_token(client)
    this_year = simulator.state.today.year
    # The whole of this year against the whole of last year (closed, with its disposition),
    # and a range of months in the middle.
    for period in (Period(this_year, 1, 12), Period(this_year, 3, simulator.state.today.month)):
        before = Period(this_year - 1, period.first_month, period.last_month)
        now, names = tripletex_year(simulator, company, period)
        old, old_names = await api_year(api, token, client_id, before)
        page = await client.get(url, params=params(period, compare=True))
        assert page.status_code == 200
        assert column_heads(page.text) == [
            "Konto",
            "Navn",
            "Inngående saldo",
            "Bevegelse",
            "Utgående saldo",
            f"Bevegelse i fjor ({before.year})",
            f"Utgående saldo i fjor ({before.year})",
            "Endring i utgående saldo",
        ]
        rows = shown_rows(page.text)
        assert rows == expected_rows(now, {**old_names, **names}, old), period
        assert sum_row(rows, "Sum") == (ZERO,) * 6
        assert f"Sammenlignet med {before.label}" in text_of(page.text)
        # And last year's columns are the API's own saldobalanse for those months.
        for kind, label, amounts in rows:
            if kind == "konto":
                number = int(label.split()[0])
                assert amounts[3:5] == old.get(number, (ZERO,) * 3)[1:], (period, number)

    # Last year in full: its closing moves the result to equity (8960), shown after the
    # årsresultat, which is the year's profit or loss, not zero.
    last_year = Period(this_year - 1, 1, 12)
    page = await client.get(url, params=params(last_year, compare=False))
    now, names = tripletex_year(simulator, company, last_year)
    rows = shown_rows(page.text)
    assert rows == expected_rows(now, names)
    result = sum_row(rows, RESULT)
    assert result[1] != ZERO and result[1] == -sum_row(rows, DISPOSITIONS)[1]
    assert sum_row(rows, "Sum balanse")[2] == -(result[2] + sum_row(rows, DISPOSITIONS)[2])
    words = "overskudd" if result[1] < 0 else "underskudd"
    assert (
        f"Årsresultat for januar–desember {last_year.year} (bevegelse): {words} på "
        f"{text_of(format_amount(abs(result[1])))}"
    ) in text_of(page.text)
    assert "i fjor" not in " ".join(column_heads(page.text))


async def test_no_comparison_without_last_years_data_and_it_is_said(
    client: AsyncTestClient, simulator: Simulator, tripletex_client: tuple[str, int, Company]
) -> None:
    url, _, company = tripletex_client
    oldest = Period(simulator.state.today.year - 1, 1, 6)
    page = await client.get(url, params=params(oldest, compare=True))
    assert page.status_code == 200
    body = text_of(page.text)
    assert f"Ingen data for {oldest.year - 1} – saldobalansen kan ikke sammenlignes" in body
    assert len(column_heads(page.text)) == 5  # the period alone, as without the choice
    now, names = tripletex_year(simulator, company, oldest)
    assert shown_rows(page.text) == expected_rows(now, names)
    # The form keeps the choice; without it the note is not there.
    assert 'name="sammenlign" value="1" checked' in page.text
    plain = await client.get(url, params=params(oldest, compare=False))
    assert "Ingen data for" not in plain.text
    assert 'name="sammenlign" value="1">' in plain.text


async def test_the_swapped_table_and_the_live_update_keep_the_comparison(
    client: AsyncTestClient, simulator: Simulator, tripletex_client: tuple[str, int, Company]
) -> None:
    url, _, _ = tripletex_client
    today = simulator.state.today
    period = Period(today.year, 1, today.month)
    page = await client.get(url, params=params(period, compare=True))
    fragment = await client.get(
        url,
        params=params(period, compare=True),
        headers={**htmx(client), "HX-Target": "trial-balance"},
    )
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="trial-balance"')
    assert shown_rows(fragment.text) == shown_rows(page.text)
    live = re.search(r'id="client-live" hx-get="([^"]+)"', page.text)
    assert live and "sammenlign=1" in live.group(1)
    # New figures arrive (any state other than the one the page shows): the table swapped
    # in keeps last year's columns.
    news = await client.get(
        live.group(1).replace("&amp;", "&").replace("siden=", "siden=x"), headers=htmx(client)
    )
    assert news.status_code == 200
    assert re.search(r'id="trial-balance"[^>]*hx-swap-oob="true"', news.text)
    assert shown_rows(news.text) == shown_rows(page.text)
    assert f"Bevegelse i fjor ({today.year - 1})" in column_heads(news.text)


async def test_subtotal_rows_are_row_headers_and_the_table_scrolls_in_its_own_box(
    client: AsyncTestClient, tripletex_client: tuple[str, int, Company]
) -> None:
    url, _, _ = tripletex_client
    page = (await client.get(url)).text
    table = re.search(r'<div id="trial-balance".*?</table>', page, re.S)
    assert table
    assert re.search(r'<div class="table-scroll" role="region" aria-labelledby="[^"]+"', page)
    subtotals = re.findall(
        r'<tr class="(?:subtotal|section-total[^"]*|sum[^"]*)">\s*<th ([^>]*)>', table[0]
    )
    assert subtotals and all('scope="row"' in attributes for attributes in subtotals)
    assert len(re.findall(r'<th scope="rowgroup"', table[0])) >= 2  # Balanse, Resultat


# -- PowerOffice Go ------------------------------------------------------------------------


async def test_poweroffice_client_grouped_and_compared_to_the_ore(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings, world: World
) -> None:
    [(office_id,)] = await query(
        settings, "SELECT office_id FROM user_account WHERE email = 'regnskap@kontor-a.no'"
    )
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    vault = KeyVault(settings.encryption_keys)
    try:
        simulator_id = sorted(world.state.clients)[0]
        integration = await onboard(OfficeDb(factory, office_id), vault, world, [simulator_id])
        [(client_id,)] = await query(
            settings, f"SELECT id FROM client WHERE integration_id = {integration.id}"
        )
        sync = SyncEngine(
            factory,
            vault,
            Connectors([world.connector]),
            SyncSettings(years=2),
            today=lambda: TODAY,
        )
        assert await sync.sync_client(client_id, trigger="activation", full=True) == "ok"
        # The page offers the years as of the latest sync: the simulator's day, not ours.
        from models import Client

        async with factory() as db:
            stored = await db.get(Client, client_id)
            assert stored is not None
            stored.synced_at = datetime(TODAY.year, TODAY.month, TODAY.day, 12, tzinfo=UTC)
            db.add(stored)
            await db.commit()
    finally:
        await engine.dispose()

    books = world.state.clients[simulator_id]
    token = await create_token(client)
    url = f"/integrasjoner/{integration.id}/klienter/{client_id}/oversikt"
    for period in (Period(TODAY.year, 1, TODAY.month), Period(TODAY.year, 1, 12)):
        start = date(period.year, period.first_month, 1)
        opening, movement = _expected(books, start, next_month(period.year, period.last_month))
        now = {
            n: (
                opening.get(n, ZERO),
                movement.get(n, ZERO),
                opening.get(n, ZERO) + movement.get(n, ZERO),
            )
            for n in opening.keys() | movement.keys()
            if opening.get(n, ZERO) or movement.get(n, ZERO)
        }
        before = Period(period.year - 1, period.first_month, period.last_month)
        old, old_names = await api_year(api, token, client_id, before)
        _, names = await api_year(api, token, client_id, period)
        page = await client.get(url, params=params(period, compare=True))
        assert page.status_code == 200, page.text
        rows = shown_rows(page.text)
        assert rows == expected_rows(now, {**old_names, **names}, old), period
        assert sum_row(rows, "Sum") == (ZERO,) * 6
    # Last year in full holds the year-end closing: shown after the årsresultat.
    assert any(kind == "konto" and label.startswith("8960 ") for kind, label, _ in rows)
    assert sum_row(rows, RESULT)[3] == -sum_row(rows, DISPOSITIONS)[3] != ZERO


# -- SAF-T ---------------------------------------------------------------------------------

BALANCE_ACCOUNTS = ("15000", "19200", "20500", "24000")
RESULT_ACCOUNTS = ("30000", "40000", "50000", "63000", "70000", "80500")


def books_of(year: int, seed: int) -> Books:
    """A year of a 5-digit chart across the classes: balance accounts open with balances,
    result accounts at zero, each month balanced against the bank, and a December closing
    (89600 against 20500) that brings the result accounts back to zero."""
    import random

    rng = random.Random(seed)

    def cents() -> Decimal:
        return Decimal(rng.randint(-900_000, 900_000)) / 100

    openings = {a: cents() for a in BALANCE_ACCOUNTS if a != "19200"}
    openings["19200"] = -sum(openings.values(), ZERO)
    openings |= {a: ZERO for a in (*RESULT_ACCOUNTS, "89600")}
    movements: dict[str, dict[int, Decimal]] = {a: {} for a in openings}
    result = ZERO
    for month in range(1, 13):
        moved = {a: cents() for a in (*RESULT_ACCOUNTS, "15000", "24000")}
        result += sum((moved[a] for a in RESULT_ACCOUNTS), ZERO)
        if month == 12:
            moved |= {"89600": -result, "20500": result}
        moved["19200"] = -sum(moved.values(), ZERO)
        for account, value in moved.items():
            movements[account][month] = value
    return Books(year=year, openings=openings, movements=movements)


def books_figures(books: Books, period: Period) -> dict[int, Figures]:
    figures = {}
    for account, opening in books.openings.items():
        per = books.movements[account]
        balance_in = opening + sum((v for m, v in per.items() if m < period.first_month), ZERO)
        moved = sum(
            (v for m, v in per.items() if period.first_month <= m <= period.last_month), ZERO
        )
        if balance_in or moved:
            figures[int(account)] = (balance_in, moved, balance_in + moved)
    return figures


async def test_saft_client_with_a_5_digit_chart_grouped_and_compared(
    client: AsyncTestClient, api: AsyncTestClient, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    years = {2023: books_of(2023, 1), 2024: books_of(2024, 2)}
    for year, books in years.items():
        written = write_saft(tmp_path / f"{year}.xml", books)
        assert (await upload(client, integration_id, written.path)).status_code == 201
    table = await client.get(f"/integrasjoner/{integration_id}")
    found = re.search(r"/klienter/(\d+)/oversikt", table.text)
    assert found
    client_id = int(found.group(1))
    url = f"/integrasjoner/{integration_id}/klienter/{client_id}/oversikt"
    names = {int(a): f"Konto {a}" for a in years[2024].openings}
    token = await create_token(client)

    for period in (Period(2024, 1, 12), Period(2024, 4, 9)):
        before = Period(2023, period.first_month, period.last_month)
        old, _ = await api_year(api, token, client_id, before)
        assert old == books_figures(years[2023], before)  # the API: what the file says
        page = await client.get(url, params=params(period, compare=True))
        assert page.status_code == 200, page.text
        rows = shown_rows(page.text)
        assert rows == expected_rows(books_figures(years[2024], period), names, old), period
        assert sum_row(rows, "Sum") == (ZERO,) * 6
    # The closed year: Årsresultat is the year's result; the closing comes after it.
    full = shown_rows((await client.get(url, params=params(Period(2024, 1, 12), True))).text)
    assert sum_row(full, RESULT)[1] == -sum_row(full, DISPOSITIONS)[1] != ZERO
    assert [label for kind, label, _ in full if kind == "sum"][:3] == [
        "Sum klasse 1 Eiendeler",
        "Sum klasse 2 Egenkapital og gjeld",
        "Sum balanse",
    ]

    # The first year has no year before it here.
    first = await client.get(url, params=params(Period(2023, 1, 12), compare=True))
    body = text_of(first.text)
    assert "Ingen data for 2022" in body and "Importer en fil for 2022 for å sammenligne." in body
    assert shown_rows(first.text) == expected_rows(
        books_figures(years[2023], Period(2023, 1, 12)), names
    )
