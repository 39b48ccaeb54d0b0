"""Streaming reader for SAF-T Financial files (Skatteetaten's XSD 1.10 for AuditFileVersion
1.10/1.20, XSD 1.30 for 1.30).

`read_saft(path)` returns the file's company, selection period, chart of accounts with
opening and closing balances, and per account per (PeriodYear, Period) the movement summed
from the transaction lines — all Decimal — plus the findings where the file disagrees with
itself. Findings are reported, never adjusted: the movements are exactly what the lines say
and the openings/closings exactly what the master data says.

A file that is not SAF-T Financial, not well-formed XML, of an unknown version, invalid
against its XSD, or that carries a DOCTYPE is refused with `SaftRefused`, whose messages are
Norwegian and name the element and line of the first problems.

How memory stays bounded: the file is read twice with `lxml.etree.iterparse`. The first pass
reads only up to `Header/AuditFileVersion` (it refuses a DOCTYPE and a foreign root before
anything else) to pick the schema. The second pass receives only the "records" — Header,
each `Account`, each `Transaction` and the other repeated elements of the format — and
releases them in windows of `WINDOW` records, so the tree in memory holds at most one window
whatever the file's size.

Why the XSD is checked per window and not by `iterparse(..., schema=...)`: lxml allows the
latter, but libxml2's streaming validator reports every problem with line 0 and only when
the whole file has been read, and the refusal must name the line. So each window is
validated as a tree instead: a copy of the completed part of the document up to the newest
record (the open ancestors as empty shells, the records of the window, the header) is
validated, which gives exact line numbers and stops at the first bad window. Elements the
parser has read ahead of the newest record are never part of the copy, because they may be
incomplete. Errors on the open ancestors' shells ("missing child") are ignored there; the
whole remaining tree, complete by then, is validated once more at the end. An error's line
is taken from the file's own element at the error's path (copies lose lines above 65535).

The XSD's identity constraints (xs:key, xs:keyref, xs:unique) are removed before use. They
make a validator keep every key and reference of the file until the end (memory grows with
the file), and the keyref from `Line/AccountID` to the chart of accounts would refuse a file
whose lines use an account missing from the master data — which the product must show as a
finding instead. The reader checks that reference itself (`UnknownAccount`); duplicate
`TransactionID`s and the other references are not checked.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import BinaryIO

from lxml import etree

NAMESPACE = "urn:StandardAuditFile-Taxation-Financial:NO"
_NS = "{" + NAMESPACE + "}"
_XS = "{http://www.w3.org/2001/XMLSchema}"
SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_FILES = {
    "1.10": "Norwegian_SAF-T_Financial_Schema_v_1.10.xsd",
    "1.30": "Norwegian_SAF-T_Financial_Schema_v_1.30.xsd",
}
# AuditFileVersion -> the XSD it is validated against. 1.20 files use schema 1.10
# (Skatteetaten's note: "AuditFileVersion ... 1.20 (current version) or 1.30").
SCHEMA_FOR_VERSION = {"1.10": "1.10", "1.20": "1.10", "1.30": "1.30"}

ZERO = Decimal("0.00")
WINDOW = 500
MAX_PROBLEMS = 5
MAX_FINDINGS_PER_KIND = 1000

# Entity expansion, DTD loading and network access off, and libxml2's own size limits on
# (huge_tree=False): a "billion laughs" or external-entity file cannot expand or fetch.
_SAFE_PARSING = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "huge_tree": False,
    "remove_comments": True,
    "remove_pis": True,
}

_ROOT = _NS + "AuditFile"
_HEADER = _NS + "Header"
_ACCOUNT = _NS + "Account"
_TRANSACTION = _NS + "Transaction"
_LINE = _NS + "Line"
_ACCOUNT_ID = _NS + "AccountID"
_DEBIT_AMOUNT = _NS + "DebitAmount"
_CREDIT_AMOUNT = _NS + "CreditAmount"
_AMOUNT = _NS + "Amount"
_PERIOD = _NS + "Period"
_PERIOD_YEAR = _NS + "PeriodYear"
_TRANSACTION_ID = _NS + "TransactionID"
_TRANSACTION_DATE = _NS + "TransactionDate"
_DESCRIPTION = _NS + "Description"
# The repeated elements of the format (record tag -> its list element). Each is released
# once validated; anything big in a SAF-T file is a list of one of these.
_RECORD_PARENTS = {
    _NS + tag: _NS + parent
    for tag, parent in (
        ("Account", "GeneralLedgerAccounts"),
        ("Taxonomy", "Taxonomies"),
        ("Customer", "Customers"),
        ("Supplier", "Suppliers"),
        ("TaxTableEntry", "TaxTable"),
        ("UOMTableEntry", "UOMTable"),
        ("AnalysisTypeTableEntry", "AnalysisTypeTable"),
        ("MovementTypeTableEntry", "MovementTypeTable"),
        ("Product", "Products"),
        ("PhysicalStockEntry", "PhysicalStock"),
        ("Owner", "Owners"),
        ("Asset", "Assets"),
        ("Transaction", "Journal"),
        ("Invoice", "SalesInvoices"),
        ("Payment", "Payments"),
        ("StockMovement", "MovementOfGoods"),
        ("AssetTransaction", "AssetTransactions"),
    )
}
# PurchaseInvoices holds Invoice too.
_RECORD_LISTS = {*_RECORD_PARENTS.values(), _NS + "PurchaseInvoices"}


class SaftRefused(Exception):
    """The file is not accepted; `problems` are Norwegian sentences naming element and line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class SelectionPeriod:
    """`Header/SelectionCriteria`: periods (with years) or dates, as the file gives them."""

    start_period: int | None = None
    start_year: int | None = None
    end_period: int | None = None
    end_year: int | None = None
    start_date: date | None = None
    end_date: date | None = None


@dataclass(frozen=True)
class Account:
    account_id: str
    description: str
    opening: Decimal  # OpeningDebitBalance - OpeningCreditBalance
    closing: Decimal  # ClosingDebitBalance - ClosingCreditBalance
    grouping_category: str | None
    grouping_code: str | None
    line: int


@dataclass(frozen=True)
class OpeningsUnbalanced:
    """The opening balances of the chart of accounts do not sum to zero."""

    total: Decimal

    def describe(self) -> str:
        return f"Inngående saldoer summerer seg ikke til null, men til {self.total}."


@dataclass(frozen=True)
class ClosingMismatch:
    """Opening + the movements of the lines differs from the file's own closing balance."""

    account_id: str
    opening: Decimal
    movements: Decimal
    computed_closing: Decimal
    file_closing: Decimal

    @property
    def difference(self) -> Decimal:
        return self.file_closing - self.computed_closing

    def describe(self) -> str:
        return (
            f"Konto {self.account_id}: inngående saldo {self.opening} + bevegelser "
            f"{self.movements} = {self.computed_closing}, men filens utgående saldo er "
            f"{self.file_closing} (differanse {self.difference})."
        )


@dataclass(frozen=True)
class UnbalancedTransaction:
    """A transaction whose debit and credit lines do not sum to the same amount."""

    transaction_id: str
    journal_id: str
    period_year: int
    period: int
    debit: Decimal
    credit: Decimal
    line: int

    @property
    def difference(self) -> Decimal:
        return self.debit - self.credit

    def describe(self) -> str:
        return (
            f"Bilag {self.transaction_id} (journal {self.journal_id}, linje {self.line}) "
            f"går ikke i balanse: debet {self.debit}, kredit {self.credit}."
        )


@dataclass(frozen=True)
class UnknownAccount:
    """Transaction lines on an account that the chart of accounts does not have."""

    account_id: str
    line_count: int
    movement: Decimal

    def describe(self) -> str:
        return (
            f"Konto {self.account_id} mangler i kontoplanen, men har {self.line_count} "
            f"posteringslinjer med sum {self.movement}."
        )


Finding = OpeningsUnbalanced | ClosingMismatch | UnbalancedTransaction | UnknownAccount


@dataclass(frozen=True)
class SaftFile:
    audit_file_version: str
    schema_version: str
    registration_number: str
    company_name: str
    period: SelectionPeriod
    accounts: dict[str, Account]  # in the file's order
    movements: dict[str, dict[tuple[int, int], Decimal]]  # account -> (year, period) -> sum
    transaction_count: int
    line_count: int
    findings: tuple[Finding, ...]
    findings_omitted: int  # unbalanced transactions beyond MAX_FINDINGS_PER_KIND
    # Large exports come split: a master file (chart, no GeneralLedgerEntries) and period
    # files (entries, no GeneralLedgerAccounts); a whole file has both.
    has_chart: bool = True
    has_entries: bool = True

    def movement(self, account_id: str, year: int, period: int) -> Decimal:
        return self.movements.get(account_id, {}).get((year, period), ZERO)


# One `Transaction/Line` as `read_saft` hands it to a `lines` callback, in file order:
# (its place in the file from 1, AccountID, PeriodYear, Period, TransactionDate as written,
# TransactionID, the line's Description else its transaction's, the amount debit positive
# and credit negative). A plain tuple: millions are made, and a class costs several times
# as much to make.
TransactionLine = tuple[int, str, int, int, str, str, str, Decimal]


def read_saft(
    path: Path,
    progress: Callable[[int], None] | None = None,
    lines: Callable[[TransactionLine], None] | None = None,
) -> SaftFile:
    """Read and check a SAF-T Financial file; raise `SaftRefused` if it is not accepted.
    `progress`, if given, is called with the bytes read so far as reading goes on; `lines`
    with each transaction line once its window has been validated (a file refused later
    has had some lines handed out: the caller keeps them until the file is accepted)."""
    version = _sniff_version(path)
    schema_version = SCHEMA_FOR_VERSION[version]
    reader = _Reader(version, schema_version, _schema(schema_version), lines)
    with path.open("rb") as stream:
        reader.run(stream if progress is None else _Reporting(stream, progress))
    return reader.result()


class _Reporting:
    """A stream that tells how far it has been read (lxml reads through `read`)."""

    def __init__(self, stream: BinaryIO, report: Callable[[int], None]) -> None:
        self._stream = stream
        self._report = report
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._done += len(data)
        self._report(self._done)
        return data


@cache
def _schema(schema_version: str) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    document = etree.parse(str(SCHEMA_DIR / SCHEMA_FILES[schema_version]), parser)
    for constraint in list(document.iter(_XS + "key", _XS + "keyref", _XS + "unique")):
        constraint.getparent().remove(constraint)
    return etree.XMLSchema(document)


def _local(tag: object) -> str:
    text = str(tag)
    return text.rsplit("}", 1)[-1]


def _not_well_formed(error: etree.XMLSyntaxError) -> SaftRefused:
    message = str(error.msg or error).replace(_NS, "")
    return SaftRefused(
        [f"Filen er ikke velformet XML: {message} (linje {error.lineno}, kolonne {error.offset})."]
    )


def _sniff_version(path: Path) -> str:
    """Read up to Header/AuditFileVersion: refuse a DOCTYPE, a foreign root, an unknown
    version. Only the start of the file is read."""
    depth = 0
    root_seen = False
    try:
        with path.open("rb") as stream:
            for event, element in etree.iterparse(stream, events=("start", "end"), **_SAFE_PARSING):
                if event == "start":
                    depth += 1
                    if not root_seen:
                        root_seen = True
                        _check_root(element)
                    elif depth == 2 and element.tag != _HEADER:
                        break
                    continue
                depth -= 1
                if element.tag == _NS + "AuditFileVersion" and depth == 2:
                    version = (element.text or "").strip()
                    if version not in SCHEMA_FOR_VERSION:
                        raise SaftRefused(
                            [
                                f"Ukjent SAF-T-versjon «{version}» i element AuditFileVersion "
                                f"(linje {element.sourceline}). Versjon 1.10, 1.20 og 1.30 "
                                "støttes."
                            ]
                        )
                    return version
                if depth == 1:
                    break
    except etree.XMLSyntaxError as error:
        raise _not_well_formed(error) from None
    if not root_seen:
        raise SaftRefused(["Filen inneholder ikke noe XML-element."])
    raise SaftRefused(
        ["Elementet Header/AuditFileVersion mangler først i filen, så versjonen er ukjent."]
    )


def _check_root(root: etree._Element) -> None:
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        # A SAF-T file never needs a DTD; entity declarations are how "billion laughs" and
        # external-entity files attack a parser, so they are refused before any content.
        raise SaftRefused(
            [
                "Filen inneholder en DOCTYPE-deklarasjon (før rotelementet på linje "
                f"{root.sourceline}). SAF-T-filer har ingen, og filer med DTD eller "
                "entiteter avvises av sikkerhetshensyn."
            ]
        )
    if root.tag != _ROOT:
        qname = etree.QName(root)
        where = f"i navnerommet «{qname.namespace}»" if qname.namespace else "uten navnerom"
        raise SaftRefused(
            [
                f"Filen er ikke en SAF-T Financial-fil: rotelementet er «{qname.localname}» "
                f"{where} (linje {root.sourceline}), ventet «AuditFile» i navnerommet "
                f"«{NAMESPACE}»."
            ]
        )


_ELEMENT_IN_MESSAGE = re.compile(r"Element '([^']+)'")


def _original(live: etree._ElementTree, error: etree._LogEntry) -> etree._Element | None:
    """The element of the file an error is about. The validated copy has the same child
    positions as the file's tree, so the error's path finds the original, whose line number
    is exact (copies lose line numbers above 65535)."""
    if not error.path:
        return None
    try:
        found = live.xpath(error.path)
    except etree.XPathError:
        return None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return found[0]
    return None


def _schema_problem(
    error: etree._LogEntry, original: etree._Element | None, schema_version: str
) -> str:
    message = error.message.replace(_NS, "")
    if original is not None:
        element = f", element «{_local(original.tag)}»"
        line = original.sourceline or error.line
    else:
        found = _ELEMENT_IN_MESSAGE.search(message)
        element = f", element «{found.group(1)}»" if found else ""
        line = error.line
    return (
        f"Filen følger ikke XSD-skjemaet for SAF-T Financial {schema_version}: "
        f"linje {line}{element}: {in_norwegian(message)}"
    )


# libxml2's messages for the schema rules files break most often, in Norwegian; any other
# is shown as libxml2 words it (English), after the element and line.
_SCHEMA_MESSAGES = (
    (
        re.compile(
            r"\[facet 'fractionDigits'\] The value '([^']*)' has more fractional digits "
            r"than are allowed \('(\d+)'\)"
        ),
        "verdien «{0}» har flere desimaler enn tillatt ({1}).",
    ),
    (
        re.compile(r"'([^']*)' is not a valid value of the atomic type 'xs:(decimal|integer)'"),
        "«{0}» er ikke et gyldig tall.",
    ),
    (
        re.compile(r"'([^']*)' is not a valid value of the atomic type 'xs:date'"),
        "«{0}» er ikke en gyldig dato (ÅÅÅÅ-MM-DD).",
    ),
    (
        re.compile(
            r"\[facet 'maxLength'\] The value has a length of '(\d+)'; this exceeds "
            r"the allowed maximum length of '(\d+)'"
        ),
        "verdien er {0} tegn lang, men høyst {1} er tillatt.",
    ),
    (
        re.compile(r"\[facet 'enumeration'\] The value '([^']*)' is not an element of the set"),
        "verdien «{0}» er ikke en av de tillatte verdiene.",
    ),
    (
        re.compile(r"\[facet 'pattern'\] The value '([^']*)' is not accepted by the pattern"),
        "verdien «{0}» har ikke riktig format.",
    ),
    (
        re.compile(r"This element is not expected\. Expected is(?: one of)? \( ([^)]*) \)"),
        "elementet skal ikke stå her; her ventes {0}.",
    ),
    (re.compile(r"This element is not expected\."), "elementet skal ikke stå her."),
    (
        re.compile(r"Missing child element\(s\)\. Expected is(?: one of)? \( ([^)]*) \)"),
        "mangler underelement; her ventes {0}.",
    ),
)


def in_norwegian(message: str) -> str:
    for pattern, text in _SCHEMA_MESSAGES:
        found = pattern.search(message)
        if found:
            return text.format(*found.groups())
    return message


def _text(parent: etree._Element, tag: str) -> str | None:
    child = parent.find(_NS + tag)
    if child is None or child.text is None:
        return None
    return child.text.strip()


def _amount(parent: etree._Element, tag: str) -> Decimal:
    text = _text(parent, tag)
    return Decimal(text) if text is not None else ZERO


def _int(text: str | None) -> int | None:
    return int(text) if text is not None else None


def _date(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text is not None else None


class _Reader:
    def __init__(
        self,
        version: str,
        schema_version: str,
        schema: etree.XMLSchema,
        lines: Callable[[TransactionLine], None] | None = None,
    ) -> None:
        self.lines = lines
        self.version = version
        self.schema_version = schema_version
        self.schema = schema
        self.registration_number = ""
        self.company_name = ""
        self.period = SelectionPeriod()
        self.accounts: dict[str, Account] = {}
        self.has_chart = self.has_entries = False
        self.movements: dict[tuple[str, int, int], Decimal] = {}
        self.lines_per_account: dict[str, int] = {}
        self.unbalanced: list[UnbalancedTransaction] = []
        self.unbalanced_omitted = 0
        self.transaction_count = 0
        self.line_count = 0
        self.pending: list[etree._Element] = []
        # The newest released record of each list stays in the tree so that the list keeps
        # the one element the schema requires (minOccurs=1) in the next window's copy.
        self.kept: dict[etree._Element, etree._Element] = {}

    def run(self, stream: BinaryIO | _Reporting) -> None:
        tags = [_ROOT, _HEADER, *_RECORD_PARENTS]
        last: etree._Element | None = None
        try:
            for _, element in etree.iterparse(stream, events=("end",), tag=tags, **_SAFE_PARSING):
                last = element
                tag = element.tag
                if tag == _ROOT:
                    self._flush_final(element)
                elif tag == _HEADER:
                    if element.getparent() is not None and element.getparent().tag == _ROOT:
                        self.pending.append(element)
                        self._flush(element)
                else:
                    parent = element.getparent()
                    if parent is None or parent.tag not in _RECORD_LISTS:
                        continue
                    self.pending.append(element)
                    if len(self.pending) >= WINDOW:
                        self._flush(element)
        except etree.XMLSyntaxError as error:
            refused = _not_well_formed(error)
            if last is not None:
                refused = SaftRefused(
                    [
                        *refused.problems,
                        f"Sist fullstendig leste element: «{_local(last.tag)}» på linje "
                        f"{last.sourceline}.",
                    ]
                )
            raise refused from None

    def _flush(self, newest: etree._Element) -> None:
        if not self.schema.validate(_completed_copy(newest)):
            live = newest.getroottree()
            open_ancestors = set(newest.iterancestors())
            problems = []
            for error in self.schema.error_log:
                original = _original(live, error)
                # The empty shells standing in for the still-open ancestors miss their later
                # children by construction; the final validation covers those elements.
                if original is None or original not in open_ancestors:
                    problems.append((error, original))
            self._refuse_if(problems)
        self._take_pending()

    def _flush_final(self, root: etree._Element) -> None:
        # The lists stay in the tree (their records are released): what the file holds.
        self.has_chart = root.find(f"{_NS}MasterFiles/{_NS}GeneralLedgerAccounts") is not None
        self.has_entries = root.find(f"{_NS}GeneralLedgerEntries") is not None
        live = root.getroottree()
        if not self.schema.validate(live):
            self._refuse_if([(error, _original(live, error)) for error in self.schema.error_log])
        self._take_pending()

    def _refuse_if(self, problems: list[tuple[etree._LogEntry, etree._Element | None]]) -> None:
        if problems:
            raise SaftRefused(
                _schema_problem(error, original, self.schema_version)
                for error, original in problems[:MAX_PROBLEMS]
            )

    def _take_pending(self) -> None:
        for element in self.pending:
            tag = element.tag
            if tag == _TRANSACTION:
                self._transaction(element)
            elif tag == _ACCOUNT:
                self._account(element)
            elif tag == _HEADER:
                self._header(element)
                continue  # required and small: stays
            parent = element.getparent()
            previous = self.kept.get(parent)
            if previous is not None:
                parent.remove(previous)
            self.kept[parent] = element
        self.pending.clear()

    def _header(self, header: etree._Element) -> None:
        company = header.find(_NS + "Company")
        if company is not None:
            self.registration_number = _text(company, "RegistrationNumber") or ""
            self.company_name = _text(company, "Name") or ""
        criteria = header.find(_NS + "SelectionCriteria")
        if criteria is not None:
            self.period = SelectionPeriod(
                start_period=_int(_text(criteria, "PeriodStart")),
                start_year=_int(_text(criteria, "PeriodStartYear")),
                end_period=_int(_text(criteria, "PeriodEnd")),
                end_year=_int(_text(criteria, "PeriodEndYear")),
                start_date=_date(_text(criteria, "SelectionStartDate")),
                end_date=_date(_text(criteria, "SelectionEndDate")),
            )

    def _account(self, element: etree._Element) -> None:
        account_id = _text(element, "AccountID") or ""
        self.accounts[account_id] = Account(
            account_id=account_id,
            description=_text(element, "AccountDescription") or "",
            opening=_amount(element, "OpeningDebitBalance")
            - _amount(element, "OpeningCreditBalance"),
            closing=_amount(element, "ClosingDebitBalance")
            - _amount(element, "ClosingCreditBalance"),
            grouping_category=_text(element, "GroupingCategory"),
            grouping_code=_text(element, "GroupingCode"),
            line=element.sourceline or 0,
        )

    def _transaction(self, element: etree._Element) -> None:
        self.transaction_count += 1
        year = period = 0
        debit = credit = ZERO
        movements = self.movements
        lines_per_account = self.lines_per_account
        sink = self.lines
        transaction_id = transaction_date = transaction_text = ""
        # One pass over the children instead of a find() per field: this is the hot loop.
        # Validated first, so the transaction's fields precede its lines (XSD sequence).
        for child in element:
            tag = child.tag
            if tag == _LINE:
                self.line_count += 1
                account_id = line_text = ""
                amount = ZERO
                for part in child:
                    part_tag = part.tag
                    if part_tag == _ACCOUNT_ID:
                        account_id = (part.text or "").strip()
                    elif part_tag == _DEBIT_AMOUNT:
                        amount = Decimal(part.findtext(_AMOUNT) or 0)
                        debit += amount
                    elif part_tag == _CREDIT_AMOUNT:
                        value = Decimal(part.findtext(_AMOUNT) or 0)
                        credit += value
                        amount = -value
                    elif part_tag == _DESCRIPTION:
                        line_text = (part.text or "").strip()
                key = (account_id, year, period)
                movements[key] = movements.get(key, ZERO) + amount
                lines_per_account[account_id] = lines_per_account.get(account_id, 0) + 1
                if sink is not None:
                    sink(
                        (
                            self.line_count,
                            account_id,
                            year,
                            period,
                            transaction_date,
                            transaction_id,
                            line_text or transaction_text,
                            amount,
                        )
                    )
            elif tag == _PERIOD:
                period = int(child.text or 0)
            elif tag == _PERIOD_YEAR:
                year = int(child.text or 0)
            elif sink is None:
                continue
            elif tag == _TRANSACTION_ID:
                transaction_id = (child.text or "").strip()
            elif tag == _TRANSACTION_DATE:
                transaction_date = (child.text or "").strip()
            elif tag == _DESCRIPTION:
                transaction_text = (child.text or "").strip()
        if debit != credit:
            if len(self.unbalanced) >= MAX_FINDINGS_PER_KIND:
                self.unbalanced_omitted += 1
                return
            journal = element.getparent()
            self.unbalanced.append(
                UnbalancedTransaction(
                    transaction_id=_text(element, "TransactionID") or "",
                    journal_id=(_text(journal, "JournalID") or "") if journal is not None else "",
                    period_year=year,
                    period=period,
                    debit=debit,
                    credit=credit,
                    line=element.sourceline or 0,
                )
            )

    def result(self) -> SaftFile:
        per_account: dict[str, dict[tuple[int, int], Decimal]] = {}
        for (account_id, year, period), amount in sorted(self.movements.items()):
            per_account.setdefault(account_id, {})[(year, period)] = amount
        findings: list[Finding] = []
        total_opening = sum((a.opening for a in self.accounts.values()), ZERO)
        if total_opening != 0:
            findings.append(OpeningsUnbalanced(total=total_opening))
        # A master file (a chart, no entries: large exports come split) says nothing about
        # movements, and a period file (entries, no chart) nothing about accounts.
        for account in self.accounts.values() if self.has_entries else ():
            moved = sum(per_account.get(account.account_id, {}).values(), ZERO)
            computed = account.opening + moved
            if computed != account.closing:
                findings.append(
                    ClosingMismatch(
                        account_id=account.account_id,
                        opening=account.opening,
                        movements=moved,
                        computed_closing=computed,
                        file_closing=account.closing,
                    )
                )
        findings.extend(self.unbalanced)
        for account_id, months in per_account.items() if self.has_chart else ():
            if account_id not in self.accounts:
                findings.append(
                    UnknownAccount(
                        account_id=account_id,
                        line_count=self.lines_per_account[account_id],
                        movement=sum(months.values(), ZERO),
                    )
                )
        return SaftFile(
            audit_file_version=self.version,
            schema_version=self.schema_version,
            registration_number=self.registration_number,
            company_name=self.company_name,
            period=self.period,
            accounts=dict(self.accounts),
            movements=per_account,
            transaction_count=self.transaction_count,
            line_count=self.line_count,
            findings=tuple(findings),
            findings_omitted=self.unbalanced_omitted,
            has_chart=self.has_chart,
            has_entries=self.has_entries,
        )


def _completed_copy(newest: etree._Element) -> etree._ElementTree:
    """The document as completed up to `newest`: each open ancestor as an empty shell with
    copies of its children before the path (line numbers kept), then `newest` itself."""
    path = [newest, *newest.iterancestors()]
    path.reverse()
    shell: etree._Element | None = None
    root_shell: etree._Element | None = None
    for ancestor, on_path in itertools.pairwise(path):
        copied = etree.Element(ancestor.tag, dict(ancestor.attrib), nsmap=ancestor.nsmap)
        for child in ancestor:
            if child is on_path:
                break
            copied.append(copy.deepcopy(child))
        if shell is None:
            root_shell = copied
        else:
            shell.append(copied)
        shell = copied
    assert shell is not None and root_shell is not None
    shell.append(copy.deepcopy(newest))
    return etree.ElementTree(root_shell)
