"""Deterministic demo clients: names, charts and two years of balanced, posted vouchers.

Each client draws from its own `random.Random` seeded by its index, so the same `today` and
`now` always give the same clients, vouchers and amounts.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from simulators.poweroffice.chart import CHART, is_balance_account, org_number
from simulators.poweroffice.clock import OSLO
from simulators.poweroffice.model import Account, Client, Line, Voucher

CENT = Decimal("0.01")
VAT_RATE = Decimal("0.25")

# Names with æøå, `&` and quotes on purpose: what breaks naive HTML, URL and CSV handling.
CLIENT_NAMES: tuple[str, ...] = (
    "Fjellstua Ølbryggeri AS",
    "Havgløtt Fiskeoppdrett AS",
    "Smørås & Sønner AS",
    "Blåbærlia Barnehage SA",
    "Kjøkkenkroken Ås ANS",
    "Trøndelag Tømrer & Bygg AS",
    "Sæther Rådgivning Åse Sæther",
    "Nordkapp Reiseliv AS",
    "Bjørk & Bråten Advokatfirma DA",
    "Lofoten Tørrfisk AS",
    "Ærlig Håndverk AS",
    "Gjøvik Glass & Ramme AS",
    "Strandkanten Kafé & Bar AS",  # withdraws our access, see WITHDRAWN_NAME
    "Hønefoss Hagesenter AS",
    "Østbye Eiendom AS",
    '"Bølgen" Surfeklubb',
    "Mjøsa Maskin AS",
    "Vågsbygd Velvære ENK",
    "Årdal Aluminium Service AS",
    "Førde Fysioterapi & Trening AS",
)
WITHDRAWN_NAME = "Strandkanten Kafé & Bar AS"

_SUPPLIER_ACCOUNTS = (4000, 4000, 6300, 6800, 7700)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT)


def _amount(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def _months(first: date, last: date) -> Iterator[date]:
    month = first.replace(day=1)
    while month <= last:
        yield month
        month = (month + timedelta(days=32)).replace(day=1)


def _day_in(rng: random.Random, month: date, until: date) -> date:
    last = ((month + timedelta(days=32)).replace(day=1) - timedelta(days=1)).day
    return min(month.replace(day=rng.randint(1, last)), until)


def _voucher_kinds(rng: random.Random) -> Iterator[tuple[str, list[tuple[int, Decimal]]]]:
    """Endless (description, [(AccountNo, amount)]) of ordinary business, each balanced."""
    while True:
        kind = rng.random()
        if kind < 0.35:
            net = _amount(rng, 800, 60_000)
            if rng.random() < 0.2:
                yield "Salg, avgiftsfritt", [(1500, net), (3100, -net)]
            else:
                vat = money(net * VAT_RATE)
                yield "Salg", [(1500, net + vat), (3000, -net), (2700, -vat)]
        elif kind < 0.55:
            paid = _amount(rng, 1_000, 60_000)
            yield "Innbetaling fra kunde", [(1920, paid), (1500, -paid)]
        elif kind < 0.8:
            account = rng.choice(_SUPPLIER_ACCOUNTS)
            net = _amount(rng, 200, 25_000)
            if account == 7700:
                yield "Styremøte", [(7700, net), (2400, -net)]
            else:
                vat = money(net * VAT_RATE)
                yield "Leverandørfaktura", [(account, net), (2710, vat), (2400, -(net + vat))]
        elif kind < 0.95:
            paid = _amount(rng, 200, 20_000)
            yield "Betaling til leverandør", [(2400, paid), (1920, -paid)]
        elif rng.random() < 0.5:
            interest = _amount(rng, 1, 900)
            yield "Renteinntekt", [(1920, interest), (8050, -interest)]
        else:
            interest = _amount(rng, 1, 1_500)
            yield "Rentekostnad", [(8150, interest), (1920, -interest)]


def _created(rng: random.Random, day: date, now: datetime) -> datetime:
    """Posted at work hours on its date or a few days later (bookkeeping lags), before now."""
    delay = timedelta(days=rng.choice((0, 0, 0, 1, 2, 3, 7, 14)), minutes=rng.randint(0, 540))
    moment = datetime.combine(day, time(8, 0), OSLO) + delay
    ceiling = now - timedelta(minutes=1)
    return min(moment, ceiling).replace(microsecond=rng.randint(0, 999_999))


def _voucher(
    rng: random.Random,
    day: date,
    description: str,
    lines: list[tuple[int, Decimal]],
    created: datetime,
    last_changed: datetime,
) -> Voucher:
    """A posted voucher; numbered (and its lines given ids) once all are made."""
    return Voucher(
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        voucher_no=0,
        posting_date=day,
        description=description,
        lines=[Line(0, no, money(amount)) for no, amount in lines],
        created=created,
        last_changed=last_changed,
    )


def build_client(
    index: int, name: str, today: date, now: datetime, ids: Iterator[int], taken: set[str]
) -> Client:
    """Client number `index` (1-based): chart, opening balance on 1 January last year and
    ordinary vouchers every month up to `today`, all created before `now`."""
    rng = random.Random(f"poweroffice-sim:client:{index}")
    start = date(today.year - 1, 1, 1)
    chart_time = datetime.combine(start, time(7, 0), OSLO)
    accounts = {
        no: Account(next(ids), no, account_name, vat, chart_time) for no, account_name, vat in CHART
    }
    drafts: list[tuple[date, str, list[tuple[int, Decimal]]]] = []
    capital = _amount(rng, 50_000, 400_000)
    share_capital = Decimal("30000.00")
    drafts.append(
        (start, "Åpningsbalanse",
         [(1920, capital), (2000, -share_capital), (2050, share_capital - capital)])
    )  # fmt: skip
    kinds = _voucher_kinds(rng)
    for month in _months(start, today):
        salary = _amount(rng, 15_000, 45_000)
        drafts.append((_day_in(rng, month, today), "Lønn", [(5000, salary), (1920, -salary)]))
        for _ in range(rng.randint(4, 9)):
            description, lines = next(kinds)
            drafts.append((_day_in(rng, month, today), description, lines))
    # Last year is closed: its result goes to equity (årsoppgjør), so that this year's
    # saldobalanse opens at zero, as in a real client's books.
    result = sum(
        (
            amount
            for day, _, lines in drafts
            if day.year == start.year
            for no, amount in lines
            if not is_balance_account(no)
        ),
        Decimal(0),
    )
    closing = (
        date(start.year, 12, 31),
        f"Årsoppgjør {start.year}: disponering av resultat",
        [(8960, -result), (2050, result)],
    )
    vouchers = []
    for day, description, lines in drafts:
        assert sum(amount for _, amount in lines) == 0, (description, lines)
        created = _created(rng, day, now)
        last_changed = created
        if rng.random() < 0.03:  # a description edited later: only LastChanged moves
            edited = created + timedelta(days=rng.randint(1, 30))
            last_changed = max(created, min(edited, now - timedelta(seconds=30)))
        vouchers.append(_voucher(rng, day, description, lines, created, last_changed))
    if result:  # dated 31 December, posted in January (its own draws: the rest stays)
        closed = random.Random(f"poweroffice-sim:closing:{index}")
        day, description, lines = closing
        created = _created(closed, date(start.year + 1, 1, 15), now)
        vouchers.append(_voucher(closed, day, description, lines, created, created))
    # Go numbers vouchers and transactions in the order they were posted.
    vouchers.sort(key=lambda v: v.created)
    for number, voucher in enumerate(vouchers, start=1):
        voucher.voucher_no = number
        for line in voucher.lines:
            line.id = next(ids)
    return Client(
        id=index,
        client_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        name=name,
        org_no=org_number(rng, taken),
        accounts=accounts,
        vouchers=vouchers,
    )
