"""Writes SAF-T Financial files for the tests: valid ones (AuditFileVersion 1.10/1.20 on
Skatteetaten's XSD 1.10, and 1.30) whose lines sum to exactly the balances asked for, and
deliberately broken ones — each inconsistency the reader reports, each kind of file it
refuses. The writer streams, so files of hundreds of thousands of lines cost little memory.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TextIO
from xml.sax.saxutils import escape

NAMESPACE = "urn:StandardAuditFile-Taxation-Financial:NO"
CENT = Decimal("0.01")


class Break(enum.Enum):
    OPENINGS_UNBALANCED = "openings_unbalanced"  # first account's opening (and closing) +100
    CLOSING_MISMATCH = "closing_mismatch"  # first account's closing +12.34
    UNBALANCED_TRANSACTION = "unbalanced_transaction"  # first transaction gets 5.00 debit more
    UNKNOWN_ACCOUNT = "unknown_account"  # a transaction on account 9999, not in master data
    NOT_WELL_FORMED = "not_well_formed"  # a mistyped end tag in the middle
    WRONG_NAMESPACE = "wrong_namespace"
    UNKNOWN_VERSION = "unknown_version"  # AuditFileVersion 2.00
    XSD_INVALID = "xsd_invalid"  # an amount with three decimals in the middle
    BILLION_LAUGHS = "billion_laughs"
    EXTERNAL_ENTITY = "external_entity"


UNKNOWN_ACCOUNT_ID = "9999"
UNKNOWN_ACCOUNT_AMOUNT = Decimal("77.00")
OPENING_SHIFT = Decimal("100.00")
CLOSING_SHIFT = Decimal("12.34")
UNBALANCE = Decimal("5.00")


@dataclass(frozen=True)
class Books:
    """What a file should say: per account the opening balance and per month the movement
    (positive = debit). Each month's movements and the openings must sum to zero, as in
    real books, so that every transaction written can balance."""

    year: int
    openings: dict[str, Decimal]
    movements: dict[str, dict[int, Decimal]]


@dataclass
class Written:
    path: Path
    audit_file_version: str
    openings: dict[str, Decimal]  # as written in the master data
    closings: dict[str, Decimal]  # as written in the master data
    movements: dict[tuple[str, int, int], Decimal]  # (account, year, month) as the lines sum
    transaction_count: int
    line_count: int
    broken_line: int | None = None  # line of the deliberate defect, where there is one
    first_transaction_id: str | None = None
    first_transaction_amount: Decimal | None = None


def random_books(
    accounts: int = 20, year: int = 2025, seed: int = 17, months: range = range(1, 13)
) -> Books:
    rng = random.Random(seed)
    ids = [str(1000 + 37 * i) for i in range(accounts)]

    def balanced() -> dict[str, Decimal]:
        values = {a: Decimal(rng.randint(-5_000_000, 5_000_000)) * CENT for a in ids[:-1]}
        values[ids[-1]] = -sum(values.values(), Decimal("0.00"))
        return values

    openings = balanced()
    movements: dict[str, dict[int, Decimal]] = {a: {} for a in ids}
    for month in months:
        for account, amount in balanced().items():
            movements[account][month] = amount
    return Books(year=year, openings=openings, movements=movements)


def _split(amount: Decimal, parts: int) -> list[Decimal]:
    cents = int(amount / CENT)
    sign = 1 if cents > 0 else -1
    count = max(1, min(parts, abs(cents)))
    base, rest = divmod(abs(cents), count)
    return [sign * (base + (1 if i < rest else 0)) * CENT for i in range(count)]


def _plan(books: Books, lines_per_movement: int) -> list[tuple[int, list[tuple[str, Decimal]]]]:
    """Transactions as (month, [(account, amount), ...]): each movement of a month against
    that month's counter account, split into `lines_per_movement` balanced transactions."""
    months = sorted({m for per in books.movements.values() for m in per})
    plan: list[tuple[int, list[tuple[str, Decimal]]]] = []
    for month in months:
        moving = {a: per[month] for a, per in books.movements.items() if per.get(month, Decimal(0))}
        if sum(moving.values(), Decimal(0)) != 0:
            raise ValueError(f"movements of month {month} do not sum to zero")
        if not moving:
            continue
        counter = max(moving)
        for account, amount in moving.items():
            if account == counter:
                continue
            for part in _split(amount, lines_per_movement):
                plan.append((month, [(account, part), (counter, -part)]))
    return plan


class _Out:
    """Counts lines as it writes, so a deliberate defect's line number is known."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.line = 1

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.line += text.count("\n")


def write_saft(
    path: Path,
    books: Books,
    *,
    version: str = "1.30",
    breakage: Break | None = None,
    lines_per_movement: int = 1,
    registration_number: str = "987654325",
    company_name: str = "Testfirma AS",
) -> Written:
    year = books.year
    plan = _plan(books, lines_per_movement)
    openings = dict(books.openings)
    first_account = min(openings)
    if breakage is Break.OPENINGS_UNBALANCED:
        openings[first_account] += OPENING_SHIFT
    if breakage is Break.UNKNOWN_ACCOUNT:
        stray = [
            (UNKNOWN_ACCOUNT_ID, UNKNOWN_ACCOUNT_AMOUNT),
            (first_account, -UNKNOWN_ACCOUNT_AMOUNT),
        ]
        plan.insert(0, (1, stray))
    if breakage is Break.UNBALANCED_TRANSACTION:
        month, lines = plan[0]
        account, amount = lines[0]
        plan[0] = (month, [*lines, (account, UNBALANCE)])

    movements: dict[tuple[str, int, int], Decimal] = {}
    for month, lines in plan:
        for account, amount in lines:
            key = (account, year, month)
            movements[key] = movements.get(key, Decimal("0.00")) + amount
    closings = {
        a: openings[a]
        + sum((v for (acc, _, _), v in movements.items() if acc == a), Decimal("0.00"))
        for a in openings
    }
    if breakage is Break.CLOSING_MISMATCH:
        closings[first_account] += CLOSING_SHIFT

    written = Written(
        path=path,
        audit_file_version=version,
        openings=openings,
        closings=closings,
        movements=movements,
        transaction_count=len(plan),
        line_count=sum(len(lines) for _, lines in plan),
    )
    if plan:
        written.first_transaction_id = "T1"
        written.first_transaction_amount = abs(plan[0][1][1][1])

    namespace = (
        "urn:StandardAuditFile-Taxation-Financial:DK"
        if breakage is Break.WRONG_NAMESPACE
        else NAMESPACE
    )
    name = escape(company_name)
    prolog = '<?xml version="1.0" encoding="UTF-8"?>\n'
    if breakage is Break.BILLION_LAUGHS:
        prolog += '<!DOCTYPE AuditFile [\n <!ENTITY lol "lol">\n'
        prolog += ' <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
        for i in range(2, 10):
            refs = f"&lol{i - 1};" * 10
            prolog += f' <!ENTITY lol{i} "{refs}">\n'
        prolog += "]>\n"
        name = "&lol9;"
    elif breakage is Break.EXTERNAL_ENTITY:
        prolog += '<!DOCTYPE AuditFile [\n <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
        name = "&xxe;"
    total_debit = sum((a for _, lines in plan for _, a in lines if a > 0), Decimal("0.00"))
    total_credit = -sum((a for _, lines in plan for _, a in lines if a < 0), Decimal("0.00"))
    middle = len(plan) // 2

    with path.open("w", encoding="utf-8") as stream:
        out = _Out(stream)
        out.write(prolog)
        out.write(f'<AuditFile xmlns="{namespace}">\n<Header>\n')
        shown_version = "2.00" if breakage is Break.UNKNOWN_VERSION else version
        out.write(
            f"<AuditFileVersion>{shown_version}</AuditFileVersion>\n"
            "<AuditFileCountry>NO</AuditFileCountry>\n"
            f"<AuditFileDateCreated>{year + 1}-01-15</AuditFileDateCreated>\n"
            "<SoftwareCompanyName>Testprogram AS</SoftwareCompanyName>\n"
            "<SoftwareID>Testregnskap</SoftwareID>\n"
            "<SoftwareVersion>1.0</SoftwareVersion>\n"
            "<Company>\n"
            f"<RegistrationNumber>{registration_number}</RegistrationNumber>\n"
            f"<Name>{name}</Name>\n"
            "<Address><City>Oslo</City><PostalCode>0150</PostalCode>"
            "<Country>NO</Country></Address>\n"
            "<Contact><ContactPerson><FirstName>Kari</FirstName>"
            "<LastName>Nordmann</LastName></ContactPerson>"
            "<Telephone>22334455</Telephone></Contact>\n"
            "</Company>\n"
            "<DefaultCurrencyCode>NOK</DefaultCurrencyCode>\n"
            "<SelectionCriteria>\n"
            f"<PeriodStart>1</PeriodStart><PeriodStartYear>{year}</PeriodStartYear>\n"
            f"<PeriodEnd>12</PeriodEnd><PeriodEndYear>{year}</PeriodEndYear>\n"
            "</SelectionCriteria>\n"
            "<TaxAccountingBasis>A</TaxAccountingBasis>\n"
            "</Header>\n<MasterFiles>\n<GeneralLedgerAccounts>\n"
        )
        for account in sorted(openings):
            out.write(
                "<Account>\n"
                f"<AccountID>{account}</AccountID>\n"
                f"<AccountDescription>Konto {account}</AccountDescription>\n"
            )
            if version == "1.30":
                out.write(
                    "<GroupingCategory>RF-1167</GroupingCategory>\n"
                    f"<GroupingCode>{account}</GroupingCode>\n"
                )
            out.write("<AccountType>GL</AccountType>\n")
            opening, closing = openings[account], closings[account]
            side = "Debit" if opening >= 0 else "Credit"
            out.write(f"<Opening{side}Balance>{abs(opening)}</Opening{side}Balance>\n")
            side = "Debit" if closing >= 0 else "Credit"
            out.write(f"<Closing{side}Balance>{abs(closing)}</Closing{side}Balance>\n")
            out.write("</Account>\n")
        out.write(
            "</GeneralLedgerAccounts>\n</MasterFiles>\n<GeneralLedgerEntries>\n"
            f"<NumberOfEntries>{len(plan)}</NumberOfEntries>\n"
            f"<TotalDebit>{total_debit}</TotalDebit>\n"
            f"<TotalCredit>{total_credit}</TotalCredit>\n"
            "<Journal>\n<JournalID>GL</JournalID>\n<Description>Hovedbok</Description>\n"
            "<Type>GL</Type>\n"
        )
        for number, (month, lines) in enumerate(plan, start=1):
            day = f"{year}-{month:02d}-15"
            out.write(
                "<Transaction>\n"
                f"<TransactionID>T{number}</TransactionID>\n"
                f"<Period>{month}</Period>\n<PeriodYear>{year}</PeriodYear>\n"
                f"<TransactionDate>{day}</TransactionDate>\n"
                f"<Description>Bilag {number}</Description>\n"
                f"<SystemEntryDate>{day}</SystemEntryDate>\n"
                f"<GLPostingDate>{day}</GLPostingDate>\n"
            )
            for record, (account, amount) in enumerate(lines, start=1):
                side = "DebitAmount" if amount > 0 else "CreditAmount"
                shown = f"{abs(amount)}"
                end = "</Amount>"
                if number - 1 == middle and record == 1:
                    if breakage is Break.XSD_INVALID:
                        shown += "5"  # three decimals: SAFmonetaryType allows two
                        written.broken_line = out.line + 4
                    elif breakage is Break.NOT_WELL_FORMED:
                        end = "</Amont>"
                        written.broken_line = out.line + 4
                out.write(
                    "<Line>\n"
                    f"<RecordID>{record}</RecordID>\n<AccountID>{account}</AccountID>\n"
                    f"<Description>Linje {record}</Description>\n"
                    f"<{side}><Amount>{shown}{end}</{side}>\n"
                    "</Line>\n"
                )
            out.write("</Transaction>\n")
        out.write("</Journal>\n</GeneralLedgerEntries>\n</AuditFile>\n")
    return written
