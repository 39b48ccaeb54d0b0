"""The client page: saldobalanse equal to Tripletex's for any month or range, the chart of
accounts, the sync history, and the demo voucher — against the simulator over real HTTP."""

from __future__ import annotations

import dataclasses
import html as html_text
import re
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import httpx
import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from simulators.tripletex.model import Company
from tests.conftest import (
    Simulator,
    add_user,
    create_integration,
    csrf,
    execute,
    htmx,
    login,
    query,
)
from tests.sync_support import sync_engine

pytestmark = pytest.mark.anyio

Amounts = tuple[Decimal, Decimal, Decimal]  # in, movement, out


def amount(text: str) -> Decimal:
    """'-1 234,50' as the page writes it → Decimal('-1234.50')."""
    plain = re.sub(r"<[^>]+>", "", text)  # a movement links to its postings
    cleaned = html_text.unescape(plain).replace("\u00a0", "").replace(" ", "").replace(",", ".")
    assert re.fullmatch(r"-?\d+\.\d\d", cleaned), text
    return Decimal(cleaned)


def balance_table(page: str) -> tuple[dict[int, tuple[str, Amounts]], Amounts]:
    """The saldobalanse's rows (account → name and amounts) and its Sum row."""
    section = re.search(r'<div id="trial-balance".*?</div>', page, re.S)
    assert section, page
    rows = {
        int(number): (
            html_text.unescape(re.sub(r"<[^>]+>", "", name)).strip(),
            (amount(opening), amount(movement), amount(closing)),
        )
        for number, name, opening, movement, closing in re.findall(
            r'<tr data-account="(\d+)">\s*<td class="num">\d+</td>\s*<td>(.*?)</td>\s*'
            r'<td class="amount">(.*?)</td>\s*<td class="amount">(.*?)</td>\s*'
            r'<td class="amount">(.*?)</td>',
            section.group(0),
            re.S,
        )
    }
    total = re.search(
        r'<tr class="sum[^"]*">.*?<td class="amount">(.*?)</td>\s*<td class="amount">(.*?)</td>'
        r'\s*<td class="amount">(.*?)</td>',
        section.group(0),
        re.S,
    )
    assert total, section.group(0)
    return rows, (amount(total[1]), amount(total[2]), amount(total[3]))


def tripletex(simulator: Simulator, company: Company, start: date, end: date) -> dict:
    """The simulator's own saldobalanse for [start, end): what the page must show."""
    return {
        row.account.number: (
            row.account.name,
            (row.balance_in, row.balance_change, row.balance_out),
        )
        for row in simulator.state.balance_sheet(company.id, start, end)
        if row.balance_in or row.balance_change
    }


def next_month(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1)


def text_of(page: str) -> str:
    return " ".join(html_text.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@dataclasses.dataclass
class Synced:
    integration_id: int
    client_id: int
    company: Company

    @property
    def url(self) -> str:
        return f"/integrasjoner/{self.integration_id}/klienter/{self.client_id}/oversikt"


async def local_id(settings: Settings, erp_id: int) -> int:
    return (await query(settings, f"select id from client where erp_id = {erp_id}"))[0][0]


@pytest.fixture
async def synced(client: AsyncTestClient, settings: Settings, simulator: Simulator) -> Synced:
    """One client of the accountant's key, fully synced once from the simulator."""
    integration_id = await create_integration(client, description="Saldobalanse")
    company = simulator.state.clients_of("demo-regnskapskontor")[0]
    client_id = await local_id(settings, company.id)
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "ok"
    return Synced(integration_id, client_id, company)


async def test_client_name_in_the_table_links_to_its_page(
    client: AsyncTestClient, synced: Synced
) -> None:
    table = (await client.get(f"/integrasjoner/{synced.integration_id}")).text
    assert f'href="{synced.url}"' in table
    page = await client.get(synced.url)
    assert page.status_code == 200
    body = text_of(page.text)
    assert synced.company.name in body
    number = synced.company.organization_number
    assert f"{number[:3]} {number[3:6]} {number[6:]}" in body  # the org_number filter
    assert "Sist synkronisert:" in body and "aldri" not in body
    assert f'href="/integrasjoner/{synced.integration_id}">← Tilbake til klienter' in page.text
    # Each account's movement leads to the postings behind it, for the period shown.
    link = re.search(r'href="(/integrasjoner/\d+/klienter/\d+/konto/(\d+)\?[^"]+)"', page.text)
    assert link, "movements link to their postings"
    postings = await client.get(link.group(1).replace("&amp;", "&"))
    assert postings.status_code == 200
    assert f"Posteringer på konto {link.group(2)}" in text_of(postings.text)


async def test_chart_of_accounts_is_shown_as_synced(
    client: AsyncTestClient, settings: Settings, simulator: Simulator, synced: Synced
) -> None:
    page = (await client.get(synced.url)).text
    section = re.search(r'<details class="accounts">.*?</details>', page, re.S)
    assert section
    shown = {
        int(number): html_text.unescape(name)
        for number, name in re.findall(
            r'<tr data-account="(\d+)"[^>]*>\s*<td class="num">\d+</td>\s*<td>(.*?)</td>',
            section.group(0),
        )
    }
    assert shown == {a.number: a.name for a in synced.company.accounts}
    text = text_of(section.group(0))
    assert "Kontoplan" in text and "MVA-kode" in text and "Bankkonto" in text
    assert "Inaktiv" in text  # the seed has inactive accounts; they are kept and marked
    assert "Fjernet i Tripletex" not in text

    # An account removed in Tripletex is kept (SLETT KONTOER off) and shown as removed.
    extra = simulator.state.create_account(synced.company.id, 7799, "Midlertidig konto")
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(synced.client_id, trigger="manual")
        simulator.state.delete_account(extra.id)
        await engine.sync_client(synced.client_id, trigger="manual")
    section = re.search(
        r'<details class="accounts">.*?</details>', (await client.get(synced.url)).text, re.S
    )
    assert section
    row = re.search(r'<tr data-account="7799".*?</tr>', section.group(0), re.S)
    assert row and "Fjernet i Tripletex" in row.group(0) and "Midlertidig konto" in row.group(0)


async def test_one_month_equals_tripletex_per_account_and_sums_to_zero(
    client: AsyncTestClient, simulator: Simulator, synced: Synced
) -> None:
    today = simulator.state.today
    # A month of last year (whole) and this month (so far): opening, movement and closing.
    for year, month in ((today.year - 1, 6), (today.year - 1, 12), (today.year, today.month)):
        response = await client.get(synced.url, params={"aar": year, "fra": month, "til": month})
        assert response.status_code == 200
        rows, total = balance_table(response.text)
        expected = tripletex(
            simulator, synced.company, date(year, month, 1), next_month(year, month)
        )
        assert expected, (year, month)
        assert rows == expected, (year, month)
        assert total == (Decimal("0.00"),) * 3
        assert "Saldobalansen går ikke i null" not in response.text


async def test_a_range_of_months_and_the_htmx_fragment(
    client: AsyncTestClient, simulator: Simulator, synced: Synced
) -> None:
    year = simulator.state.today.year - 1
    expected = tripletex(simulator, synced.company, date(year, 3, 1), date(year, 9, 1))
    page = await client.get(synced.url, params={"aar": year, "fra": 3, "til": 8})
    rows, total = balance_table(page.text)
    assert rows == expected and total == (Decimal("0.00"),) * 3
    assert "mars–august" in page.text
    # The form keeps the period it shows.
    assert f'<option value="{year}" selected>' in page.text
    assert '<option value="3" selected>Mars</option>' in page.text
    assert '<option value="8" selected>August</option>' in page.text

    fragment = await client.get(
        synced.url,
        params={"aar": year, "fra": 3, "til": 8},
        headers={**htmx(client), "HX-Target": "trial-balance"},
    )
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="trial-balance"')
    assert "<html" not in fragment.text and "Kontoplan" not in fragment.text
    assert balance_table(fragment.text) == (rows, total)


async def test_default_period_is_the_current_month_of_the_latest_synced_year(
    client: AsyncTestClient, simulator: Simulator, synced: Synced
) -> None:
    today = simulator.state.today
    page = (await client.get(synced.url)).text
    rows, _ = balance_table(page)
    start = date(today.year, today.month, 1)
    assert rows == tripletex(simulator, synced.company, start, next_month(today.year, today.month))
    assert f'<option value="{today.year}" selected>' in page
    assert f'<option value="{today.year - 1}">' in page  # the window: this year and last
    assert len(re.findall(f'<option value="{today.month}" selected>', page)) == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"aar": "2020", "fra": "1", "til": "1"}, "Saldobalansen finnes bare for"),
        ({"fra": "13", "til": "13"}, "Fra måned må være et tall fra 1 til 12."),
        ({"fra": "0"}, "Fra måned må være et tall fra 1 til 12."),
        ({"fra": "8", "til": "3"}, "Fra måned kan ikke være etter Til måned."),
        ({"aar": "tjue"}, "Året må være et tall."),
        ({"fra": "1", "til": "2,5"}, "Til måned må være et tall."),
        ({"fra": "-1"}, "Fra måned må være et tall."),
        ({"aar": "99999999999999999999"}, "Året må være et tall."),
    ],
)
async def test_bad_parameters_are_refused_in_norwegian_next_to_the_form(
    client: AsyncTestClient, synced: Synced, params: dict[str, str], message: str
) -> None:
    page = await client.get(synced.url, params=params)
    assert page.status_code == 400
    assert message in html_text.unescape(page.text)
    assert '<p class="error" role="alert">' in page.text
    assert 'class="period-form"' in page.text  # the form is there to correct it
    # htmx swaps only the table, and swaps a 422 (base.html's responseHandling), not a 400.
    fragment = await client.get(
        synced.url, params=params, headers={**htmx(client), "HX-Target": "trial-balance"}
    )
    assert fragment.status_code == 422
    assert message in html_text.unescape(fragment.text)
    assert fragment.text.lstrip().startswith('<div id="trial-balance"')


async def test_client_never_synced_shows_the_empty_state(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    company = simulator.state.clients_of("demo-regnskapskontor")[3]
    client_id = await local_id(settings, company.id)
    url = f"/integrasjoner/{integration_id}/klienter/{client_id}/oversikt"
    for params in ({}, {"fra": "13"}):
        page = await client.get(url, params=params)
        assert page.status_code == 200
        body = text_of(page.text)
        assert "Ingen data ennå — klienten er ikke aktiv. Trykk Aktiver klienten" in body
        assert "Sist synkronisert: aldri" in body
        assert "Ingen synkroniseringer ennå." in body
        assert 'id="trial-balance"' not in page.text
    # Not a dead end: the page activates the client and comes back, saying so.
    activated = await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "true", "neste": "oversikt", "_csrf_token": csrf(client)},
    )
    body = text_of(activated.text)
    assert str(activated.url).endswith(url)
    assert "Klienten er aktivert og synkroniseres nå." in body
    assert "Ingen data ennå — klienten er ikke synkronisert ennå." in body
    assert "Aktiver klienten" not in body
    assert await query(settings, f"SELECT active FROM client WHERE id = {client_id}") == [(True,)]


async def test_sync_history_lists_runs_with_their_requests(
    client: AsyncTestClient, settings: Settings, simulator: Simulator, synced: Synced
) -> None:
    refused = simulator.state.company(simulator.state.no_api_access_client_id)
    refused_id = await local_id(settings, refused.id)
    async with sync_engine(settings, simulator) as engine:
        await engine.sync_client(synced.client_id, trigger="poll")
        assert await engine.sync_client(refused_id, trigger="activation") == "failed"
    runs = await query(
        settings,
        "select kind, trigger, requests, periods from sync_run "
        f"where client_id = {synced.client_id} order by id",
    )
    assert [r[:2] for r in runs] == [("full", "manual"), ("incremental", "poll")]

    page = (await client.get(synced.url)).text
    history = re.search(r"Synkroniseringshistorikk.*?</table>", page, re.S)
    assert history
    rows = [
        text_of(row)
        for row in re.findall(r"<tr>\s*<td class=\"num\">.*?</tr>", history.group(0), re.S)
    ]
    assert len(rows) == 2
    newest, oldest = rows
    _, _, requests, periods = runs[0]
    assert re.fullmatch(
        rf"\d\d\.\d\d\.\d{{4}} kl\. \d\d:\d\d:\d\d Full Manuell {requests} {periods} \d+,\d s OK",
        oldest,
    ), oldest
    assert " Endringer Jevnlig sjekk " in newest and newest.endswith(" OK")

    failed_url = f"/integrasjoner/{synced.integration_id}/klienter/{refused_id}/oversikt"
    failed = text_of((await client.get(failed_url)).text)
    assert "Aktivering" in failed and "Feilet" in failed
    # In Norwegian, not the system's own English words; and the way to try again is there.
    assert "Ingen tilgang til klienten i regnskapssystemet" in failed
    assert "AccessDenied" not in failed and "403" not in failed
    # Switched on but without access: the page offers to check again, at once.
    await execute(
        settings, f"UPDATE client SET active = TRUE, sync_due_at = NULL WHERE id = {refused_id}"
    )
    assert "Sjekk tilgang på nytt" in text_of((await client.get(failed_url)).text)
    checked = await client.post(
        failed_url.replace("/oversikt", "/sjekk"), data={"_csrf_token": csrf(client)}
    )
    assert "Tilgangen sjekkes nå." in text_of(checked.text)
    [(due,)] = await query(settings, f"SELECT sync_due_at FROM client WHERE id = {refused_id}")
    assert due is not None


async def test_another_office_gets_not_found(
    client: AsyncTestClient, settings: Settings, synced: Synced
) -> None:
    from app import create_app

    await add_user(settings, "nysgjerrig@kontor-b.no", "Kontor B AS")
    async with AsyncTestClient(create_app(settings)) as intruder:
        await login(intruder, "nysgjerrig@kontor-b.no")
        for params in ({}, {"aar": "2020"}):
            response = await intruder.get(synced.url, params=params)
            assert response.status_code == 404
            assert synced.company.name not in response.text
        # Office B's own integration does not open office A's client either.
        own = await create_integration(intruder, key="demo-eget-selskap", description="B")
        response = await intruder.get(f"/integrasjoner/{own}/klienter/{synced.client_id}/oversikt")
        assert response.status_code == 404
    # A client of another integration of the same office, and an unknown client: 404 too.
    other = await create_integration(client, key="demo-eget-selskap", description="Eget")
    for url in (
        f"/integrasjoner/{other}/klienter/{synced.client_id}/oversikt",
        f"/integrasjoner/{synced.integration_id}/klienter/999999/oversikt",
    ):
        assert (await client.get(url)).status_code == 404


@pytest.fixture
async def demo_client(
    settings: Settings, client: AsyncTestClient
) -> AsyncIterator[AsyncTestClient]:
    """The same office's user on an app in demo mode (the simulator is the test's)."""
    from app import create_app

    async with AsyncTestClient(create_app(dataclasses.replace(settings, demo=True))) as demo:
        await login(demo, "regnskap@kontor-a.no")
        yield demo


async def test_demo_button_books_a_voucher_that_the_next_sync_brings_in(
    client: AsyncTestClient,
    demo_client: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    synced: Synced,
) -> None:
    assert "Demo: bokfør et bilag i Tripletex" not in (await client.get(synced.url)).text
    page = (await demo_client.get(synced.url)).text
    assert "Demo: bokfør et bilag i Tripletex" in page
    today = simulator.state.today
    period = {"aar": today.year, "fra": today.month, "til": today.month}
    before, _ = balance_table((await demo_client.get(synced.url, params=period)).text)
    vouchers = len(synced.company.vouchers)

    action = f"/demo/integrasjoner/{synced.integration_id}/klienter/{synced.client_id}/bilag"
    assert (await demo_client.post(action, headers={"HX-Request": "true"})).status_code == 403
    notice = await demo_client.post(action, headers=htmx(demo_client))
    assert notice.status_code == 200
    assert len(synced.company.vouchers) == vouchers + 1
    voucher = synced.company.vouchers[-1]
    numbers = {a.id: a.number for a in synced.company.accounts}
    posted: dict[int, Decimal] = {}
    for posting in voucher.postings:
        number = numbers[posting.account_id]
        posted[number] = posted.get(number, Decimal("0.00")) + posting.amount
    debit = sum(a for a in posted.values() if a > 0)
    text = text_of(notice.text)
    assert text.startswith(f"Bilag bokført i Tripletex (dato {voucher.date:%d.%m.%Y}, beløp ")
    shown = re.search(r"beløp (-?[\d ]+,\d\d) kr\)", text)
    assert shown and amount(shown.group(1)) == debit, text
    assert "Saldobalansen oppdateres ved neste synkronisering." in text
    # Not synced yet: the page still shows what it had.
    assert balance_table((await demo_client.get(synced.url, params=period)).text)[0] == before

    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(synced.client_id, trigger="poll") == "ok"
    after, total = balance_table((await demo_client.get(synced.url, params=period)).text)
    assert total == (Decimal("0.00"),) * 3
    zero = ("", (Decimal("0.00"),) * 3)
    for number in before.keys() | after.keys():
        _, (opening, movement, closing) = after.get(number, zero)
        _, (opening0, movement0, closing0) = before.get(number, zero)
        change = posted.get(number, Decimal("0.00"))
        assert opening == opening0, number
        assert movement - movement0 == change, number
        assert closing - closing0 == change, number
    assert set(posted) <= after.keys()

    # Without htmx the button posts a plain form and gets the page back, with the notice.
    plain = await demo_client.post(action, data={"_csrf_token": csrf(demo_client)})
    assert plain.status_code == 200
    assert "Bilag bokført i Tripletex" in plain.text and "Saldobalanse" in plain.text
    assert len(synced.company.vouchers) == vouchers + 2


async def test_demo_button_is_not_there_outside_demo_mode(
    client: AsyncTestClient, synced: Synced
) -> None:
    action = f"/demo/integrasjoner/{synced.integration_id}/klienter/{synced.client_id}/bilag"
    vouchers = len(synced.company.vouchers)
    assert (await client.post(action, headers=htmx(client))).status_code == 404
    assert len(synced.company.vouchers) == vouchers


async def test_totals_that_are_not_zero_are_flagged(
    client: AsyncTestClient, settings: Settings, simulator: Simulator, synced: Synced
) -> None:
    """A ledger that does not balance (here: one stray stored movement) is not hidden."""
    from models import MonthMovement
    from services.db import create_engine, create_session_factory

    year = simulator.state.today.year - 1
    engine = create_engine(settings.database_url)
    try:
        async with create_session_factory(engine)() as db:
            db.add(
                MonthMovement(
                    client_id=synced.client_id,
                    year=year,
                    month=5,
                    account_number=99999,
                    amount=Decimal("-1234.56"),
                )
            )
            await db.commit()
    finally:
        await engine.dispose()
    page = await client.get(synced.url, params={"aar": year, "fra": 5, "til": 7})
    assert page.status_code == 200
    rows, total = balance_table(page.text)
    assert total == (Decimal("0.00"), Decimal("-1234.56"), Decimal("-1234.56"))
    assert rows[99999] == (
        "Ukjent konto",
        (Decimal("0.00"), Decimal("-1234.56"), Decimal("-1234.56")),
    )
    assert "Saldobalansen går ikke i null" in page.text
    assert '<tr class="sum unbalanced">' in page.text
    # A later period carries the difference into its balance in.
    _, later = balance_table((await client.get(synced.url, params={"aar": year, "fra": 9})).text)
    assert later == (Decimal("-1234.56"), Decimal("0.00"), Decimal("-1234.56"))


def test_amounts_are_written_the_norwegian_way() -> None:
    from services.balances import format_amount

    nbsp = "\u00a0"
    assert format_amount(Decimal("0")) == "0,00"
    assert format_amount(Decimal("-0.00")) == "0,00"
    assert format_amount(Decimal("999.5")) == "999,50"
    assert format_amount(Decimal("1000")) == f"1{nbsp}000,00"
    assert format_amount(Decimal("-1234567.89")) == f"-1{nbsp}234{nbsp}567,89"


async def test_the_open_page_gets_new_figures_when_a_sync_lands(
    client: AsyncTestClient, settings: Settings, simulator: Simulator, synced: Synced
) -> None:
    """Point 2 of issue 19: the page asks every few seconds; nothing until the client's data
    changes, then the header, the saldobalanse for the period shown and the history."""
    today = simulator.state.today
    period = {"aar": today.year, "fra": today.month, "til": today.month}
    page = await client.get(synced.url, params=period)
    live = re.search(r'id="client-live" hx-get="([^"]+)"', page.text)
    assert live, "the page asks for news"
    url = live.group(1).replace("&amp;", "&")
    assert f"aar={today.year}" in url and f"fra={today.month}" in url
    unchanged = await client.get(url, headers=htmx(client))
    assert unchanged.status_code == 204

    before, _ = balance_table(page.text)
    company = synced.company
    async with httpx.AsyncClient() as http:  # booked in Tripletex meanwhile
        booked = await http.post(f"{simulator.root}/_sim/companies/{company.id}/vouchers", json={})
        assert booked.status_code == 201
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(synced.client_id, trigger="poll", full=True) == "ok"
    news = await client.get(url, headers=htmx(client))
    assert news.status_code == 200
    assert "Nye tall hentet" in news.text
    for part in ('id="client-head"', 'id="trial-balance"', 'id="client-history"'):
        assert re.search(part + r'[^>]*hx-swap-oob="true"', news.text), part
    after, total = balance_table(news.text)
    assert after != before and total == (Decimal("0.00"),) * 3
    # The period shown is kept, and the next question carries the new state.
    assert f"{today.year}" in news.text
    again = re.search(r'id="client-live" hx-get="([^"]+)"', news.text)
    assert again and again.group(1) != live.group(1)
    quiet = await client.get(again.group(1).replace("&amp;", "&"), headers=htmx(client))
    assert quiet.status_code == 204


async def test_a_period_chosen_on_the_page_is_the_one_news_keeps(
    client: AsyncTestClient, synced: Synced
) -> None:
    """The period form swaps the table and, out of band, the page's question for news: new
    figures arriving later come for the period the accountant chose."""
    year = (await client.get(synced.url)).text
    chosen = {"aar": re.search(r'name="aar"[^>]*>\s*<option value="(\d+)"', year).group(1)}
    chosen |= {"fra": "3", "til": "4"}
    swapped = await client.get(
        synced.url, params=chosen, headers={**htmx(client), "HX-Target": "trial-balance"}
    )
    assert swapped.status_code == 200
    live = re.search(r'<div id="client-live" hx-get="([^"]+)"[^>]*hx-swap-oob="true"', swapped.text)
    assert live, swapped.text[:500]
    assert f"aar={chosen['aar']}&amp;fra=3&amp;til=4" in live.group(1)


async def test_a_client_the_key_no_longer_reaches_is_sent_to_the_client_list(
    client: AsyncTestClient, settings: Settings, synced: Synced
) -> None:
    await execute(
        settings,
        f"UPDATE client SET active = TRUE, access_lost = TRUE WHERE id = {synced.client_id}",
    )
    page = await client.get(synced.url)
    assert f'action="/integrasjoner/{synced.integration_id}/oppdater"' in page.text
    assert "Sjekk tilgang på nytt" not in page.text
