"""Deterministic generation of companies, charts of accounts and balanced vouchers.

Every company draws from its own `random.Random` seeded by its index, so adding a client
later never changes the data of the clients seeded before it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from simulators.tripletex.accounts import (
    CHART,
    INACTIVE_CANDIDATES,
    VAT_CODES,
    is_balance_account,
)
from simulators.tripletex.model import (
    Account,
    Address,
    Company,
    Ids,
    Posting,
    Voucher,
)

CENT = Decimal("0.01")

ORG_NUMBER_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)
BANK_ACCOUNT_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

# (name, Company.type). Real-looking names on purpose, including the characters that break
# naive HTML/CSV/SQL handling: & < > ' " and æøå.
CLIENT_NAMES: tuple[tuple[str, str], ...] = (
    ("Bakeriet <Søt & Salt> AS", "AS"),
    ('"Ærlig" Økonomi DA', "DA"),
    ("Fjord & Fjell Regnskap AS", "AS"),
    ("Nordlys Elektro AS", "AS"),
    ("Brødrene Dahl & Sønn ANS", "ANS"),
    ("Vestland Sjømat AS", "AS"),
    ("Tromsø Kaffebrenneri AS", "AS"),
    ("Solheim Gård Kari Solheim", "ENK"),
    ("Kystverftet Eiendom AS", "AS"),
    ("Lillehammer Sport & Fritid AS", "AS"),
    ("Grønn Omsorg SA", "SA"),
    ("Bryggen Bryggeri ASA", "ASA"),
    ("Stiftelsen Fyrlykta", "STI"),
    ("Nordic Bridge Consulting Ltd NUF", "NUF"),
    ("Frisør Linnea Ås", "ENK"),
    ("Tinde Arkitekter AS", "AS"),
    ("Strand Trelast AS", "AS"),  # has not given the office API access, see NO_API_ACCESS_NAME
    ("Moe & Haugland DA", "DA"),
    ("Rogaland Maskin AS", "AS"),
    ("Fiskebrygga Restaurant AS", "AS"),
    ("Snekkerverksted Jon Olsen", "ENK"),
    ("Hagen Transport AS", "AS"),
    ("Sørlandet Båtutleie ANS", "ANS"),
    ("Trøndelag Kjøtt AS", "AS"),
    ("Aurora IT-drift AS", "AS"),
    ("Kvam & Kvam Advokatfirma DA", "DA"),
    ("Bjørkelia Barnehage SA", "SA"),
    ("Helgeland Kraftentreprenør AS", "AS"),
    ("Vik Maling & Tapet AS", "AS"),
    ("Lofoten Opplevelser AS", "AS"),
    ("Tannlege Mari Eriksen", "ENK"),
    ("Østfold Gjenvinning AS", "AS"),
    ("Alpin Hytteservice KS", "KS"),
    ("Kafé 'Lille Venn' AS", "AS"),
    ("Hamar Bil & Dekk AS", "AS"),
    ("Lærdal Logistikk AS", "AS"),
    ("Dagny's Blomster", "ENK"),
    ("Elvebakken Gartneri ANS", "ANS"),
    ("Skarpsno Eiendom AS", "AS"),
    ("Fjellstad Elektro AS", "AS"),
    ("Bakken Bygg & Anlegg AS", "AS"),
    ("Varden Tannhelse AS", "AS"),
)
NO_API_ACCESS_NAME = "Strand Trelast AS"
_COMPANY_FORMS = {"AS", "ASA", "DA", "ANS", "SA", "KS", "NUF"}

# Parts for clients granted later (grant_new_client): place + trade + company form.
_PLACES = (
    "Alta", "Arendal", "Bodø", "Drammen", "Fauske", "Florø", "Gjøvik", "Harstad", "Kongsberg",
    "Kragerø", "Molde", "Mosjøen", "Namsos", "Narvik", "Røros", "Sandnes", "Skien", "Steinkjer",
    "Tønsberg", "Ålesund", "Voss", "Levanger", "Halden", "Elverum",
)  # fmt: skip
_TRADES = (
    "Bygg", "Regnskap", "Rør & Varme", "Maskin", "Bakeri", "Elektro", "Transport", "Eiendom",
    "Blomster", "Sjømat", "Data", "Tak & Fasade", "Auto", "Catering", "Frisør", "Dyreklinikk",
)  # fmt: skip
_FORMS = (("AS", "AS"), ("ANS", "ANS"), ("DA", "DA"), ("", "ENK"))

_STREETS = (
    "Storgata", "Kirkegata", "Strandveien", "Industriveien", "Fjordgata", "Sjøgata",
    "Hovedveien", "Bryggen", "Nedre Slottsgate", "Øvre Torggate", "Løkkeveien", "Havnegata",
)  # fmt: skip
_CITIES = (
    ("0150", "Oslo"), ("5003", "Bergen"), ("7010", "Trondheim"), ("4006", "Stavanger"),
    ("9008", "Tromsø"), ("2609", "Lillehammer"), ("3015", "Drammen"), ("4610", "Kristiansand"),
    ("8006", "Bodø"), ("6002", "Ålesund"), ("1530", "Moss"), ("2317", "Hamar"),
)  # fmt: skip
_CUSTOMERS = (
    "Hansen Bygg AS", "Kiwi Majorstuen", "Nordre Follo kommune", "Berg & Co AS", "Pedersen ENK",
    "Sjøblå AS", "Tine SA", "Vinmonopolet AS", "Fjellheim Hotell AS", "Lien Eiendom AS",
)  # fmt: skip
_SUPPLIERS = (
    "Tools AS", "Staples Norge AS", "Telenor Norge AS", "Circle K Norge AS", "Elkjøp Nordic AS",
    "Asko Øst AS", "Byggmakker Norge AS", "Fjordkraft AS", "Posten Norge AS", "Würth Norge AS",
)  # fmt: skip
_MONTHS = (
    "januar", "februar", "mars", "april", "mai", "juni",
    "juli", "august", "september", "oktober", "november", "desember",
)  # fmt: skip
_BANKS = ("1503", "1506", "1254", "3000", "9710", "1822", "2801", "4202")


def _mod11(digits: list[int], weights: tuple[int, ...]) -> int | None:
    """The Norwegian MOD11 check digit, or None when the number cannot get a valid one."""
    remainder = 11 - sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
    if remainder == 11:
        return 0
    return None if remainder == 10 else remainder


def is_valid_org_number(value: str) -> bool:
    if len(value) != 9 or not value.isdigit():
        return False
    digits = [int(c) for c in value]
    return _mod11(digits[:8], ORG_NUMBER_WEIGHTS) == digits[8]


def org_number(rng: random.Random, taken: set[str]) -> str:
    while True:
        digits = [rng.choice((8, 9))] + [rng.randint(0, 9) for _ in range(7)]
        check = _mod11(digits, ORG_NUMBER_WEIGHTS)
        if check is None:
            continue
        value = "".join(map(str, [*digits, check]))
        if value not in taken:
            taken.add(value)
            return value


def bank_account_number(rng: random.Random) -> str:
    while True:
        digits = [int(c) for c in rng.choice(_BANKS)] + [rng.randint(0, 9) for _ in range(6)]
        check = _mod11(digits, BANK_ACCOUNT_WEIGHTS)
        if check is not None:
            return "".join(map(str, [*digits, check]))


def new_client_name(index: int, taken: set[str]) -> tuple[str, str]:
    rng = random.Random(f"tripletex-sim:client-name:{index}")
    while True:
        place, trade = rng.choice(_PLACES), rng.choice(_TRADES)
        suffix, company_type = rng.choice(_FORMS)
        name = f"{place} {trade} {suffix}".strip()
        if company_type == "ENK":
            name = f"{trade} {rng.choice(('Ola', 'Kari', 'Nils', 'Sofie'))} {place}"
        if name not in taken:
            return name, company_type


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    """A random amount in kroner with øre, exact: never via float."""
    return (Decimal(rng.randint(low * 100, high * 100)) / 100).quantize(CENT)


def _percent(amount: Decimal, percentage: Decimal) -> Decimal:
    return (amount * percentage / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def build_company(
    *,
    ids: Ids,
    index: int,
    name: str,
    company_type: str,
    today: date,
    taken_org_numbers: set[str],
    is_accounting_office: bool = False,
    customer_company_id: int | None = None,
) -> Company:
    rng = random.Random(f"tripletex-sim:company:{index}")
    postal_code, city = rng.choice(_CITIES)
    start = date(rng.randint(1995, today.year - 3), rng.randint(1, 12), 1)
    created_at = datetime.combine(start, time(8, 0))
    # Norwegian domains in practice are ASCII: "Søt & Salt AS" -> "sotsalt.no".
    ascii_name = name.lower().translate(str.maketrans({"æ": "ae", "ø": "o", "å": "a", "é": "e"}))
    words = [
        w for w in ascii_name.split() if w not in ("as", "asa", "da", "ans", "sa", "ks", "nuf")
    ]
    voucher_ids, posting_ids = Ids.for_history(index)
    domain = "".join(c for c in "".join(words) if c.isascii() and c.isalnum())[:24] or "firma"
    company = Company(
        id=ids.company.next(),
        name=name,
        organization_number=org_number(rng, taken_org_numbers),
        type=company_type,
        start_date=start,
        **_contact(rng, ids, domain, postal_code, city),
        created_at=created_at,
        voucher_ids=voucher_ids,
        posting_ids=posting_ids,
        is_accounting_office=is_accounting_office,
        customer_company_id=customer_company_id,
    )
    inactive = set(rng.sample(INACTIVE_CANDIDATES, 2))
    for standard in CHART:
        company.accounts.append(
            Account(
                id=ids.account.next(),
                number=standard.number,
                name=standard.name,
                vat_type_id=standard.vat_type_id,
                created_at=created_at,
                is_inactive=standard.number in inactive,
                is_bank_account=standard.is_bank_account,
                bank_account_number=bank_account_number(rng) if standard.is_bank_account else "",
                is_closeable=standard.is_closeable,
                require_reconciliation=standard.require_reconciliation,
            )
        )
    history_rng = random.Random(f"tripletex-sim:history:{index}")
    company.history = lambda: _Bookkeeper(company, history_rng, today).run()
    return company


Line = tuple[int, Decimal, int, Decimal, bool]  # account, amount, vatType, gross, systemGenerated


@dataclass
class _Draft:
    date: date
    description: str
    lines: list[Line]


@dataclass
class _Bookkeeper:
    """Writes a plausible year and a bit of bookkeeping: every draft balances to 0.00."""

    company: Company
    rng: random.Random
    today: date
    drafts: list[_Draft] = field(default_factory=list)
    # Movements per account, so settlements can sum what is due without rescanning drafts.
    movements: dict[int, list[tuple[date, Decimal]]] = field(default_factory=dict)

    def run(self) -> list[Voucher]:
        first_year = self.today.year - 1
        scale = self.rng.choice((4_000, 12_000, 30_000, 80_000, 200_000))  # typical invoice
        # Payroll at about 40 % of revenue (~5.6 invoices of `scale` a month) keeps the
        # company solvent; sole proprietors (ENK) pay no salary to their owner.
        staff = 0 if self.company.type == "ENK" else scale * 56 // 10 * 4 // 10 // 48_000
        self._opening_balance(date(first_year, 1, 1), scale)
        month = date(first_year, 1, 1)
        while month <= self.today:
            self._month(month, scale, staff)
            month = (month + timedelta(days=32)).replace(day=1)
        for year in range(first_year, self.today.year):
            self._close_year(year)
        return self._book()

    def add(self, day: date, description: str, lines: list[Line]) -> None:
        assert sum(line[1] for line in lines) == 0, description
        self.drafts.append(_Draft(day, description, lines))
        for account, amount, *_ in lines:
            self.movements.setdefault(account, []).append((day, amount))

    @staticmethod
    def plain(account: int, amount: Decimal) -> Line:
        return (account, amount, 0, amount, False)

    def _opening_balance(self, day: date, scale: int) -> None:
        bank = _money(self.rng, scale * 2, scale * 8)
        receivables = _money(self.rng, scale, scale * 3)
        fixtures = _money(self.rng, scale, scale * 4)
        payables = -_money(self.rng, scale // 2, scale * 2)
        share_capital = Decimal("-30000.00") if self.company.type in ("AS", "ASA") else Decimal(0)
        equity = -(bank + receivables + fixtures + payables + share_capital)
        lines = [
            self.plain(1920, bank),
            self.plain(1500, receivables),
            self.plain(1250, fixtures),
            self.plain(2400, payables),
            self.plain(2050, equity),
        ]
        if share_capital:
            lines.append(self.plain(2000, share_capital))
        self.add(day, f"Åpningsbalanse {day.year}", lines)

    def _month(self, month: date, scale: int, staff: int) -> None:
        rng = self.rng
        label = f"{_MONTHS[month.month - 1]} {month.year}"
        last_day = (month + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        rent = Decimal(scale * 3 // 10).quantize(CENT)
        self.add(month, f"Husleie {label}", [self.plain(6300, rent), self.plain(1920, -rent)])
        for _ in range(rng.randint(3, 6)):
            self._sale(month.replace(day=rng.randint(1, 28)), scale)
        for _ in range(rng.randint(1, 2)):
            self._supplier_invoice(month.replace(day=rng.randint(1, 28)), scale)
        account = rng.choice((6800, 6900, 7000, 6860, 7320, 6550))
        self._card_purchase(month.replace(day=rng.randint(1, 28)), account, scale)
        if staff:
            self._salary(month.replace(day=25), staff, label)
        if month.month % 2 == 1:
            self._pay_withholding(month.replace(day=15))
        if month.month in (2, 4, 6, 8, 10, 12):
            self._settle_vat(month.replace(day=10))
        fee = _money(rng, 49, 390)
        self.add(last_day, f"Bankgebyr {label}", [self.plain(7770, fee), self.plain(1920, -fee)])
        depreciation = _money(rng, scale // 40, scale // 10)
        self.add(
            last_day,
            f"Avskrivninger {label}",
            [self.plain(6010, depreciation), self.plain(1250, -depreciation)],
        )
        if month.month % 3 == 0:
            interest = _money(rng, 20, scale // 20 + 21)
            self.add(
                last_day,
                f"Renteinntekter {month.month // 3}. kvartal {month.year}",
                [self.plain(1920, interest), self.plain(8050, -interest)],
            )

    def _sale(self, day: date, scale: int) -> None:
        rng = self.rng
        customer = rng.choice(_CUSTOMERS)
        invoice = 10_000 + len(self.drafts)
        revenue_account, vat_code, vat_account = rng.choices(
            ((3000, 3, 2700), (3030, 31, 2701), (3100, 5, None)), weights=(8, 1, 1)
        )[0]
        net = _money(rng, scale // 2, scale * 2)
        vat = _percent(net, VAT_CODES[vat_code].percentage)
        gross = net + vat
        lines: list[Line] = [
            self.plain(1500, gross),
            (revenue_account, -net, vat_code, -gross, False),
        ]
        if vat_account:
            lines.append((vat_account, -vat, vat_code, -vat, True))
        self.add(day, f"Faktura {invoice} {customer}", lines)
        paid = day + timedelta(days=rng.randint(10, 35))
        if rng.random() < 0.9:  # some invoices stay unpaid: open receivables
            self.add(
                paid,
                f"Innbetaling faktura {invoice}",
                [self.plain(1920, gross), self.plain(1500, -gross)],
            )

    def _supplier_invoice(self, day: date, scale: int) -> None:
        rng = self.rng
        supplier = rng.choice(_SUPPLIERS)
        expense = rng.choice((4000, 4300, 4500, 6340, 6360, 6540, 6705))
        net = _money(rng, scale // 10, scale)
        vat = _percent(net, VAT_CODES[1].percentage)
        gross = net + vat
        self.add(
            day,
            f"Leverandørfaktura {supplier}",
            [
                (expense, net, 1, gross, False),
                (2710, vat, 1, vat, True),
                self.plain(2400, -gross),
            ],
        )
        self.add(
            day + timedelta(days=rng.randint(10, 30)),
            f"Betaling {supplier}",
            [self.plain(2400, gross), self.plain(1920, -gross)],
        )

    def _card_purchase(self, day: date, expense: int, scale: int) -> None:
        net = _money(self.rng, 150, max(scale // 8, 300))
        vat = _percent(net, VAT_CODES[1].percentage)
        self.add(
            day,
            f"Kortkjøp {self.rng.choice(_SUPPLIERS)}",
            [
                (expense, net, 1, net + vat, False),
                (2710, vat, 1, vat, True),
                self.plain(1920, -(net + vat)),
            ],
        )

    def _salary(self, day: date, staff: int, label: str) -> None:
        gross = sum((_money(self.rng, 34_000, 62_000) for _ in range(staff)), Decimal(0))
        withholding = _percent(gross, Decimal("33"))
        employer_tax = _percent(gross, Decimal("14.1"))
        self.add(
            day,
            f"Lønn {label}",
            [
                self.plain(5000, gross),
                self.plain(2600, -withholding),
                self.plain(1920, -(gross - withholding)),
                self.plain(5400, employer_tax),
                self.plain(2770, -employer_tax),
            ],
        )

    def _balance_before(self, day: date, account: int) -> Decimal:
        return sum((a for d, a in self.movements.get(account, ()) if d < day), Decimal(0))

    def _pay_withholding(self, day: date) -> None:
        withholding = -self._balance_before(day, 2600)
        employer_tax = -self._balance_before(day, 2770)
        if withholding <= 0 and employer_tax <= 0:
            return
        self.add(
            day,
            f"Forskuddstrekk og arbeidsgiveravgift {day.strftime('%m.%Y')}",
            [
                self.plain(2600, withholding),
                self.plain(2770, employer_tax),
                self.plain(1920, -(withholding + employer_tax)),
            ],
        )

    def _settle_vat(self, day: date) -> None:
        """Bi-monthly VAT return (mva-melding) paid or refunded through the bank."""
        outgoing = {acc: self._balance_before(day, acc) for acc in (2700, 2701)}
        incoming = self._balance_before(day, 2710)
        net = sum(outgoing.values(), Decimal(0)) + incoming
        if net == 0:
            return
        term = day.month // 2
        lines = [self.plain(acc, -amount) for acc, amount in outgoing.items() if amount]
        lines += [self.plain(2710, -incoming), self.plain(1920, net)]
        self.add(day, f"Mva-oppgjør {term}. termin {day.year}", lines)

    def _close_year(self, year: int) -> None:
        """Year-end closing: the result goes to equity, so result accounts restart at zero."""
        result = sum(
            (
                line[1]
                for d in self.drafts
                if d.date.year == year
                for line in d.lines
                if not is_balance_account(line[0])
            ),
            Decimal(0),
        )
        profit = -result
        lines: list[Line] = []
        if profit > 0 and self.company.type in ("AS", "ASA"):
            tax = _percent(profit, Decimal("22"))
            lines += [self.plain(8300, tax), self.plain(2500, -tax)]
            profit -= tax
        lines += [self.plain(8960, profit), self.plain(2050, -profit)]
        self.add(date(year, 12, 31), f"Årsoppgjør {year}: disponering av resultat", lines)

    def _book(self) -> list[Voucher]:
        """Book the drafts dated up to today in date order, numbered per year as Tripletex does."""
        booked = sorted(
            (d for d in self.drafts if d.date <= self.today),
            key=lambda d: d.date,
        )
        numbers: dict[int, int] = {}
        vouchers = []
        accounts = {a.number: a.id for a in self.company.accounts}
        for seq, draft in enumerate(booked):
            numbers[draft.date.year] = numbers.get(draft.date.year, 0) + 1
            voucher = Voucher(
                id=self.company.voucher_ids.next(),
                number=numbers[draft.date.year],
                year=draft.date.year,
                date=draft.date,
                description=draft.description,
                # Registered during the working day of its date, in booking order.
                created_at=datetime.combine(draft.date, time(8, 0)) + timedelta(minutes=seq % 480),
            )
            voucher.postings = [
                Posting(
                    id=self.company.posting_ids.next(),
                    voucher_id=voucher.id,
                    date=draft.date,
                    description=draft.description,
                    account_id=accounts[number],
                    amount=amount,
                    amount_gross=gross,
                    vat_type_id=vat_type,
                    row=row,
                    system_generated=generated,
                )
                for row, (number, amount, vat_type, gross, generated) in enumerate(
                    draft.lines, start=1
                )
            ]
            vouchers.append(voucher)
        return vouchers


# -- Benchmark scale: thousands of clients, built in seconds, held in little memory ----------

# Two accounts a client adds to the standard plan, so a scaled client has 80 (CHART has 78).
SCALED_EXTRA_ACCOUNTS = ((1580, "Andre fordringer"), (6420, "Leie datasystemer"))
_NAME_COMBINATIONS = len(_PLACES) * len(_TRADES) * len(_FORMS)


def scaled_client_name(index: int) -> tuple[str, str]:
    """A plausible client name, unique for every index >= 0 (place, trade, form, then a
    number once the combinations run out): for worlds of thousands of clients."""
    place = _PLACES[index % len(_PLACES)]
    trade = _TRADES[index // len(_PLACES) % len(_TRADES)]
    suffix, company_type = _FORMS[index // (len(_PLACES) * len(_TRADES)) % len(_FORMS)]
    round_ = index // _NAME_COMBINATIONS
    numbered = f" {round_ + 1}" if round_ else ""
    if company_type == "ENK":
        return f"{trade} {('Ola', 'Kari', 'Nils', 'Sofie')[index % 4]} {place}{numbered}", "ENK"
    return f"{place} {trade}{numbered} {suffix}", company_type


def build_scaled_template(*, ids: Ids, index: int, today: date, taken: set[str]) -> Company:
    """A client company with a history of its own (as build_company) and 80 accounts, whose
    chart and history clones share (see clone_company)."""
    name, company_type = scaled_client_name(index)
    company = build_company(
        ids=ids,
        index=index,
        name=name,
        company_type=company_type,
        today=today,
        taken_org_numbers=taken,
        customer_company_id=ids.customer.next(),
    )
    for number, account_name in SCALED_EXTRA_ACCOUNTS:
        company.accounts.append(
            Account(
                id=ids.account.next(),
                number=number,
                name=account_name,
                vat_type_id=0,
                created_at=company.created_at,
            )
        )
    return company


def _contact(
    rng: random.Random, ids: Ids, domain: str, postal_code: str, city: str
) -> dict[str, Any]:
    """E-mail, phone and address; drawn in this order from `rng` (same seed, same data)."""
    return {
        "email": f"post@{domain}.no",
        "phone_number": f"{rng.choice((2, 3, 5, 7))}{rng.randint(1_000_000, 9_999_999)}",
        "address": Address(
            id=ids.address.next(),
            address_line1=f"{rng.choice(_STREETS)} {rng.randint(1, 120)}",
            postal_code=postal_code,
            city=city,
        ),
    }


def clone_company(template: Company, *, ids: Ids, index: int, taken: set[str]) -> Company:
    """A client company of its own (id, name, organization number, address, id ranges for
    new vouchers) whose chart of accounts and booked history are the template's objects,
    shared rather than copied: a client costs a few kilobytes, not half a megabyte.

    For benchmarks. The clone's lists are its own, so vouchers booked for it later (the
    control API's POST /_sim/companies/{id}/vouchers) change only its balances; changing a
    shared voucher or account (PUT, DELETE) changes every company that shares it.
    """
    name, company_type = scaled_client_name(index)
    rng = random.Random(f"tripletex-sim:clone:{index}")
    postal_code, city = rng.choice(_CITIES)
    voucher_ids, posting_ids = Ids.for_history(index)
    words = "".join(c for c in name.lower() if c.isascii() and c.isalnum())[:24] or "firma"
    company = Company(
        id=ids.company.next(),
        name=name,
        organization_number=org_number(rng, taken),
        type=company_type,
        start_date=template.start_date,
        **_contact(rng, ids, words, postal_code, city),
        created_at=template.created_at,
        voucher_ids=voucher_ids,
        posting_ids=posting_ids,
        customer_company_id=ids.customer.next(),
        accounts=list(template.accounts),
    )
    company.history = lambda: list(template.vouchers)
    return company
