"""Drill-down from the saldobalanse to an account's postings (issue 19): fetched from
Tripletex and PowerOffice Go on demand, equal to the system's own lines and summing to the
stored movement, kept for a minute, refused to another office. SAF-T clients' postings come
from the imported lines: tests/test_saft_postings.py."""

from __future__ import annotations

import html as html_text
import re
from decimal import Decimal

import pytest
from litestar.testing import AsyncTestClient

from routes.postings import CACHE_STATE
from services.balances import MONTHS, format_amount, trial_balance
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.metrics import Metrics
from services.outbound import outbound
from services.postings import PostingsCache
from services.settings import Settings
from services.sync.engine import SyncEngine, SyncSettings
from simulators.tripletex.model import Company
from tests.api_support import office_b  # noqa: F401
from tests.conftest import PowerOffice, Simulator, query
from tests.sync_support import stored_month
from tests.test_client_page import Synced, synced  # noqa: F401
from tests.test_poweroffice_web import answer, start

pytestmark = pytest.mark.anyio

Row = tuple[str, str, str, Decimal]  # date, bilagsnummer, tekst, beløp as the page shows them


def amount(text: str) -> Decimal:
    """'-1 234,50' as the page writes it → Decimal('-1234.50')."""
    cleaned = html_text.unescape(text).replace("\u00a0", "").replace(" ", "").replace(",", ".")
    assert re.fullmatch(r"-?\d+\.\d\d", cleaned), text
    return Decimal(cleaned)


def posting_table(page: str) -> tuple[list[Row], Decimal]:
    rows = [
        (day, voucher, html_text.unescape(text), amount(value))
        for day, voucher, text, value in re.findall(
            r'<tr class="posting">\s*<td class="num">(.*?)</td>\s*<td class="num">(.*?)</td>'
            r'\s*<td>(.*?)</td>\s*<td class="amount">(.*?)</td>',
            page,
            re.S,
        )
    ]
    total = re.search(r'<tr class="sum">.*?<td class="amount">(.*?)</td>', page, re.S)
    assert total, page
    return rows, amount(total.group(1))


def text_of(page: str) -> str:
    return " ".join(html_text.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def tripletex_postings(company: Company, number: int, year: int, month: int) -> list[Row]:
    """The simulator's own hovedbok for the account and month, as the page must show it."""
    account = next(a for a in company.accounts if a.number == number)
    rows = []
    for voucher in sorted(company.vouchers, key=lambda v: (v.date, v.id)):
        if (voucher.date.year, voucher.date.month) != (year, month):
            continue
        for posting in voucher.postings:
            if posting.account_id == account.id:
                rows.append(
                    (
                        posting.date.strftime("%d.%m.%Y"),
                        f"{voucher.number}-{voucher.year}",
                        posting.description or voucher.description,
                        posting.amount,
                    )
                )
    return rows


def busiest_account(company: Company, year: int, month: int) -> int:
    """The account with most postings in the month (several rows, a real sum to check)."""
    by_id = {a.id: a.number for a in company.accounts}
    counts: dict[int, int] = {}
    for voucher in company.vouchers:
        if (voucher.date.year, voucher.date.month) == (year, month):
            for posting in voucher.postings:
                number = by_id[posting.account_id]
                counts[number] = counts.get(number, 0) + 1
    return max(counts, key=lambda n: counts[n])


def postings_url(integration_id: int, client_id: int, number: int) -> str:
    return f"/integrasjoner/{integration_id}/klienter/{client_id}/konto/{number}"


def posting_requests(simulator: Simulator) -> int:
    return sum(1 for _, path, _ in simulator.responses if path.endswith("/ledger/posting"))


async def test_tripletex_postings_are_the_systems_and_sum_to_the_stored_movement(
    client: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    synced: Synced,  # noqa: F811
) -> None:
    year = simulator.state.today.year - 1
    number = busiest_account(synced.company, year, 3)
    name = next(a.name for a in synced.company.accounts if a.number == number)
    url = postings_url(synced.integration_id, synced.client_id, number)

    page = await client.get(url, params={"aar": year, "fra": 3, "til": 3})

    assert page.status_code == 200, page.text
    assert f"Posteringer på konto {number} {name}, mars {year}" in text_of(page.text)
    rows, total = posting_table(page.text)
    expected = tripletex_postings(synced.company, number, year, 3)
    assert len(expected) > 1
    assert rows == expected
    stored = await stored_movement(settings, synced.client_id, number, year, 3)
    assert stored != 0
    assert total == sum(r[3] for r in rows) == stored
    assert "Tallene er endret i Tripletex" not in page.text
    back = f"/integrasjoner/{synced.integration_id}/klienter/{synced.client_id}/oversikt"
    assert f'href="{back}?aar={year}&amp;fra=3&amp;til=3"' in page.text

    # The htmx fragment: the table alone.
    fragment = await client.get(
        url,
        params={"aar": year, "fra": 3, "til": 3},
        headers={"HX-Request": "true", "HX-Target": "postings"},
    )
    assert fragment.status_code == 200
    assert "<html" not in fragment.text and posting_table(fragment.text)[0] == expected


async def test_a_range_of_months_and_a_change_since_the_sync_is_said(
    client: AsyncTestClient,
    simulator: Simulator,
    synced: Synced,  # noqa: F811
) -> None:
    today = simulator.state.today
    number = 1920
    url = postings_url(synced.integration_id, synced.client_id, number)
    first = await client.get(url, params={"aar": today.year, "fra": 1, "til": today.month})
    rows, total = posting_table(first.text)
    assert "Tallene er endret" not in first.text
    expected = [
        row
        for month in range(1, today.month + 1)
        for row in tripletex_postings(synced.company, number, today.year, month)
    ]
    assert rows == expected and total == sum(r[3] for r in expected)
    assert f"januar–{MONTHS[today.month - 1]} {today.year}" in text_of(first.text)

    # Booked in Tripletex after our sync, in another month asked for: the lines show it, and
    # the page says the stored figure is behind.
    simulator.state.post_voucher(
        synced.company.id,
        date=today,
        postings=[(1920, "250.00"), (3000, "-250.00")],
        description="Kontantsalg",
    )
    later = await client.get(
        url, params={"aar": today.year, "fra": today.month, "til": today.month}
    )
    rows, total = posting_table(later.text)
    assert ("Kontantsalg", Decimal("250.00")) in [(r[2], r[3]) for r in rows]
    assert (
        "Tallene er endret i Tripletex siden siste synkronisering – oppdateres ved neste "
        "synkronisering" in text_of(later.text)
    )


async def test_postings_are_kept_a_minute(
    client: AsyncTestClient,
    simulator: Simulator,
    synced: Synced,  # noqa: F811
) -> None:
    now = [1000.0]
    client.app.state[CACHE_STATE] = PostingsCache(clock=lambda: now[0])
    year = simulator.state.today.year - 1
    url = postings_url(synced.integration_id, synced.client_id, 1920)
    params = {"aar": year, "fra": 5, "til": 5}

    first = await client.get(url, params=params)
    assert first.status_code == 200 and posting_requests(simulator) == 1
    now[0] += 59
    again = await client.get(url, params=params)
    assert posting_requests(simulator) == 1  # from the cache
    assert posting_table(again.text) == posting_table(first.text)
    other = await client.get(url, params={"aar": year, "fra": 6, "til": 6})
    assert other.status_code == 200 and posting_requests(simulator) == 2  # another period
    now[0] += 2  # past the minute for May
    await client.get(url, params=params)
    assert posting_requests(simulator) == 3


async def test_another_office_and_unknown_accounts_get_404(
    client: AsyncTestClient,
    office_b: AsyncTestClient,  # noqa: F811
    simulator: Simulator,
    synced: Synced,  # noqa: F811
) -> None:
    url = postings_url(synced.integration_id, synced.client_id, 1920)
    assert (await office_b.get(url)).status_code == 404
    assert posting_requests(simulator) == 0
    assert (
        await client.get(postings_url(synced.integration_id, synced.client_id, 1))
    ).status_code == 404
    assert (await client.get(url)).status_code == 200


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("revoked", "Ingen tilgang til klienten i Tripletex."),
        ("down", "Tripletex svarte ikke som det skulle. Prøv igjen om litt."),
    ],
)
async def test_errors_from_tripletex_are_said_in_norwegian_with_a_way_back(
    client: AsyncTestClient,
    simulator: Simulator,
    synced: Synced,  # noqa: F811
    fault: str,
    message: str,
) -> None:
    if fault == "revoked":
        simulator.state.revoke_client("demo-regnskapskontor", synced.company.id)
    else:
        simulator.state.set_faults(error_rate=1.0, error_kinds=("503",))
    year = simulator.state.today.year - 1
    url = postings_url(synced.integration_id, synced.client_id, 1920)
    page = await client.get(url, params={"aar": year, "fra": 3, "til": 3})
    assert page.status_code == 502
    assert message in text_of(page.text)
    assert "Tilbake til saldobalansen" in page.text
    assert '<tr class="posting">' not in page.text


async def test_poweroffice_postings_are_the_systems_and_sum_to_the_stored_movement(
    client: AsyncTestClient, settings: Settings, poweroffice: PowerOffice
) -> None:
    books = next(
        c for c in poweroffice.state.clients.values() if c.vouchers and not c.access_withdrawn
    )
    landed = await client.get(
        await answer(poweroffice, await start(client), clients=[books.id]), follow_redirects=False
    )
    assert landed.status_code == 303
    integration_id = int(landed.headers["location"].split("?")[0].rsplit("/", 1)[1])
    client_id = (await query(settings, "SELECT id FROM client"))[0][0]
    engine = create_engine(settings.database_url)
    async with outbound(5.0) as out:
        sync = SyncEngine(
            create_session_factory(engine),
            KeyVault(settings.encryption_keys),
            Connectors([settings.system("poweroffice").connector(out.erp, Metrics())]),
            SyncSettings(years=2),
            today=lambda: poweroffice.state.clock.now().date(),
        )
        assert await sync.sync_client(client_id, trigger="manual", full=True) == "ok"
        # A month with lines on a bank account: several rows and a sum.
        year, month, number = _busy_month(books)
        stored = (await stored_month(sync, client_id, year, month)).get(number)
    await engine.dispose()
    assert stored is not None

    page = await client.get(
        postings_url(integration_id, client_id, number),
        params={"aar": year, "fra": month, "til": month},
    )

    assert page.status_code == 200, page.text
    name = books.accounts[number].name
    assert f"Posteringer på konto {number} {name}, {MONTHS[month - 1]} {year}" in text_of(page.text)
    rows, total = posting_table(page.text)
    expected = sorted(
        (
            (
                voucher.posting_date.strftime("%d.%m.%Y"),
                str(voucher.voucher_no),
                voucher.description,
                line.amount,
            )
            for voucher in books.vouchers
            if (voucher.posting_date.year, voucher.posting_date.month) == (year, month)
            for line in voucher.lines
            if line.account_no == number
        ),
        key=lambda r: (r[0][6:], r[0][3:5], r[0][:2]),
    )
    assert len(expected) > 1
    assert sorted(rows) == sorted(expected)
    assert [r[0] for r in rows] == [r[0] for r in expected]  # by date
    assert total == sum(r[3] for r in rows) == stored[1]
    assert "Tallene er endret" not in page.text
    assert format_amount(total) in page.text


def _busy_month(books: object) -> tuple[int, int, int]:
    """(year, month, account) with the most lines on one account in one month."""
    counts: dict[tuple[int, int, int], int] = {}
    for voucher in books.vouchers:  # type: ignore[attr-defined]
        day = voucher.posting_date
        for line in voucher.lines:
            at = (day.year, day.month, line.account_no)
            counts[at] = counts.get(at, 0) + 1
    return max(counts, key=lambda at: counts[at])


async def stored_movement(
    settings: Settings, client_id: int, number: int, year: int, month: int
) -> Decimal:
    """The month's movement as the sync stored it (what the saldobalanse shows)."""
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as db:
            lines = await trial_balance(db, client_id, year, month, month)
    finally:
        await engine.dispose()
    return next((line.movement for line in lines if line.account_number == number), Decimal(0))
