"""Importing a SAF-T Financial file into an integration: the file's company becomes (or
updates) a client, its chart of accounts and balances are stored exactly as the file says,
and where the file disagrees with itself the findings are kept with the import.

The order of work is what keeps the previous state whole: the import is recorded as
running; the file is hashed (the same content again is "uendret" and nothing else happens)
and read completely, outside any transaction; only a file that is accepted is then written,
all of it in one transaction (client, chart, balances, the transaction lines, change log,
the import's result and findings). The lines wait in a spool file (services/saft/lines.py)
between reading and storing, so memory stays flat however large the file. A refused file,
an error or a killed process leaves the stored data as it was.

How a file's figures become stored balances (services/sync/store's model: an opening per
account per year and a movement per account per month):
- The months the file covers (its selection period, and any month its lines fall in) are
  replaced whole, movements and transaction lines alike: a month with no lines in the file
  becomes empty.
- The first year's opening is the file's opening balance of its first period. When the file
  starts after January, the year's stored months before it are kept, and the opening on
  1 January is what makes the balance into the first period equal the file's opening.
- A file spanning several years: each later year opens with the balance accounts' (1000-2999,
  NS 4102) balance carried over and the result accounts at zero.
- A period beyond 12 (some systems' year-end period 13) counts in December, period 0 in
  January.
- Large exports come split: a master file (chart and balances, no GeneralLedgerEntries)
  sets the chart and the first year's openings and leaves the months alone; a period file
  (entries, no GeneralLedgerAccounts) replaces its months and leaves chart and openings.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from sqlalchemy import func, insert, literal
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration, MonthMovement, SaftFinding, SaftImport
from models.base import utcnow
from models.saft import FindingKind, ImportStatus
from services import clients as client_service
from services.connectors.base import RemoteAccount
from services.db import SessionFactory
from services.saft.lines import Spool, store_lines
from services.saft.reader import (
    ClosingMismatch,
    Finding,
    OpeningsUnbalanced,
    SaftFile,
    SaftRefused,
    UnbalancedTransaction,
    UnknownAccount,
    read_saft,
)
from services.sync.periods import Month
from services.sync.status import SyncStatus
from services.sync.store import Amounts, Batch, store

log = logging.getLogger(__name__)

ZERO = Decimal("0.00")
# NS 4102: accounts 1xxx (assets) and 2xxx (equity and debt) carry their balance into the
# next year; 3xxx-8xxx (result) start it at zero. By the number's first digit, so that
# 5-digit charts (15000, 20500) count as they should.
BALANCE_DIGITS = ("1", "2")
MAX_ACCOUNT_DIGITS = 9
INTERRUPTED = "Importen ble avbrutt fordi appen stoppet. Ingenting fra filen er lagret."
# A running import writes `heartbeat_at` at least every PROGRESS_EVERY seconds while it
# hashes, reads and stores; one silent for this long was interrupted (its process killed).
STALE_AFTER = timedelta(minutes=2)
PROGRESS_EVERY = 0.5  # seconds between progress writes while a file is read
_HASH_CHUNK = 1024 * 1024
# Reading is CPU-bound and takes minutes for a large file: at most this many at once per
# process, on threads of their own (not the default executor other work shares).
READERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="saft-import")
FINDINGS = SaftFinding.__table__  # type: ignore[attr-defined]


class Source(StrEnum):
    UPLOAD = "upload"  # a person, on the integration's page
    API = "api"  # a local system's push, with an API token
    COMMAND = "command"  # python app.py import-saft


def org_number(registration_number: str) -> str | None:
    """The 9-digit organisation number in `Header/Company/RegistrationNumber` ("NO 987 654
    321 MVA" and the like too), if its check digit holds (modulus 11)."""
    text = registration_number.upper().replace(" ", "").replace("\u00a0", "")
    text = text.removeprefix("NO").removesuffix("MVA")
    if len(text) != 9 or not text.isascii() or not text.isdigit():
        return None
    weights = (3, 2, 7, 6, 5, 4, 3, 2)
    remainder = sum(int(d) * w for d, w in zip(text, weights, strict=False)) % 11
    check = 0 if remainder == 0 else 11 - remainder
    return text if check != 10 and check == int(text[8]) else None


async def begin(
    factory: SessionFactory,
    integration: Integration,
    *,
    file_name: str,
    source: str,
    size: int = 0,
) -> SaftImport:
    """Record a file as received and about to be imported (what the page and API show)."""
    row = SaftImport(
        integration_id=integration.id or 0,
        source=source,
        file_name=_display_name(file_name),
        size_bytes=size,
    )
    async with factory() as db:
        db.add(row)
        await db.commit()
    return row


# Called with the import's last transaction before it commits, whatever came of it: the
# audit log's record of the import is written with it, or not at all.
Finishing = Callable[[AsyncSession, SaftImport], Awaitable[None]]


async def _nothing(_db: AsyncSession, _row: SaftImport) -> None:
    return None


async def finish_refused(
    factory: SessionFactory,
    import_id: int,
    problems: list[str],
    finishing: Finishing = _nothing,
) -> SaftImport:
    """A file refused before it was read (too large, empty): nothing of it is stored."""
    return await _close(factory, import_id, ImportStatus.REFUSED, problems, finishing)


class Stopped(Exception):
    """The import was cancelled (the app is stopping): its reading stops too."""


async def run(
    factory: SessionFactory, import_id: int, path: Path, finishing: Finishing = _nothing
) -> SaftImport:
    """Import the file at `path` for the import recorded as running. Never raises for a bad
    file or our own failure: the import row says what came of it."""
    stop = threading.Event()
    try:
        return await _run(factory, import_id, path, stop, finishing)
    except asyncio.CancelledError:
        stop.set()
        await _close(factory, import_id, ImportStatus.FAILED, [INTERRUPTED], finishing)
        raise
    except Exception:
        log.exception("SAF-T import %s failed", import_id)
        return await _close(
            factory,
            import_id,
            ImportStatus.FAILED,
            ["Importen feilet hos oss. Ingenting fra filen er lagret. Prøv igjen senere."],
            finishing,
        )


async def _run(
    factory: SessionFactory,
    import_id: int,
    path: Path,
    stop: threading.Event,
    finishing: Finishing,
) -> SaftImport:
    loop = asyncio.get_running_loop()
    await _beat(factory, import_id)
    size, digest = await loop.run_in_executor(READERS, _size_and_sha256, path, stop)
    async with factory() as db:
        row = await db.get(SaftImport, import_id)
        if row is None:
            raise LookupError(f"import {import_id} is gone")
        row.sha256, row.size_bytes, row.heartbeat_at = digest, size, utcnow()
        earlier = await _same_file_imported(db, row)
        if earlier is not None:
            await _unchanged(db, row, earlier)
            await finishing(db, row)
            await db.commit()
            return row
        await db.commit()
    with Spool(path.parent) as spool:
        return await _read_and_store(factory, import_id, path, stop, spool, finishing)


async def _read_and_store(
    factory: SessionFactory,
    import_id: int,
    path: Path,
    stop: threading.Event,
    spool: Spool,
    finishing: Finishing,
) -> SaftImport:
    try:
        saft = await _read(factory, import_id, path, stop, spool)
    except SaftRefused as refused:
        problems = list(refused.problems)
        return await _close(factory, import_id, ImportStatus.REFUSED, problems, finishing)
    org = org_number(saft.registration_number)
    problems = _unstorable(saft, org)
    if problems or org is None:
        return await _close(factory, import_id, ImportStatus.REFUSED, problems, finishing)
    async with factory() as db:
        row = await db.get(SaftImport, import_id)
        if row is None:
            raise LookupError(f"import {import_id} is gone")
        # One import stores at a time per integration, across processes: this write takes
        # the integration's row lock (PostgreSQL) or the database's write lock (SQLite)
        # before anything is read, so the client, the months before the file and the
        # "newest file" check are read after any other import of it has committed.
        touched = await db.exec(
            update(Integration)
            .where(col(Integration.id) == row.integration_id)
            .values(updated_at=utcnow())
        )
        if touched.rowcount == 0:
            raise LookupError(f"the integration of import {import_id} is gone")
        integration = await db.get(Integration, row.integration_id)
        assert integration is not None
        await _store(db, integration, row, saft, org, spool)
        await finishing(db, row)
        await db.commit()
        return row


def _size_and_sha256(path: Path, stop: threading.Event) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            if stop.is_set():
                raise Stopped()
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


async def _beat(factory: SessionFactory, import_id: int, **values: object) -> None:
    """Say the import is alive (and how far it has come)."""
    async with factory() as db:
        await db.exec(
            update(SaftImport)
            .where(col(SaftImport.id) == import_id)
            .values(heartbeat_at=utcnow(), **values)
        )
        await db.commit()


async def _same_file_imported(db: AsyncSession, row: SaftImport) -> SaftImport | None:
    """The earlier import of the same content, if what it stored is still what the client
    has: no later file of the company was imported since (A, B, then A again re-imports)."""
    found = await db.exec(
        select(SaftImport)
        .where(
            col(SaftImport.integration_id) == row.integration_id,
            col(SaftImport.sha256) == row.sha256,
            col(SaftImport.status) == ImportStatus.IMPORTED,
            col(SaftImport.client_id).is_not(None),
            col(SaftImport.id) != row.id,
            col(SaftImport.lines_kept),
        )
        .order_by(col(SaftImport.id).desc())
        .limit(1)
    )
    earlier = found.first()
    if earlier is None:
        return None
    later = await db.exec(
        select(func.count()).where(
            col(SaftImport.client_id) == earlier.client_id,
            col(SaftImport.status) == ImportStatus.IMPORTED,
            col(SaftImport.id) > earlier.id,
        )
    )
    return earlier if later.one() == 0 else None


async def _unchanged(db: AsyncSession, row: SaftImport, earlier: SaftImport) -> None:
    """The same file as `earlier`: nothing is stored; its result and findings are this
    import's too."""
    for name in (
        "client_id", "audit_file_version", "company_name", "org_number", "first_year",
        "first_month", "last_year", "last_month", "account_count", "transaction_count",
        "line_count", "findings_omitted",
    ):  # fmt: skip
        setattr(row, name, getattr(earlier, name))
    row.status, row.finished_at, row.progress_bytes = (
        ImportStatus.UNCHANGED,
        utcnow(),
        row.size_bytes,
    )
    await db.flush()
    columns = ["kind", "message", *_FINDING_FIELDS]
    await db.exec(
        insert(FINDINGS).from_select(
            ["import_id", *columns],
            select(
                literal(row.id).label("import_id"), *(FINDINGS.c[name] for name in columns)
            ).where(FINDINGS.c.import_id == earlier.id),
        )
    )


async def _read(
    factory: SessionFactory, import_id: int, path: Path, stop: threading.Event, spool: Spool
) -> SaftFile:
    """Read the file on a reader thread, writing how far it has come to the import row
    meanwhile (the page's progress bar reads it, from any process), its lines to `spool`.
    Setting `stop` ends the reading at its next chunk."""
    done = 0

    def report(count: int) -> None:
        nonlocal done
        if stop.is_set():
            raise Stopped()
        done = count

    loop = asyncio.get_running_loop()
    reading = loop.run_in_executor(READERS, read_saft, path, report, spool.add)
    while not reading.done():
        await asyncio.wait({reading}, timeout=PROGRESS_EVERY)
        if not reading.done():
            await _beat(factory, import_id, progress_bytes=done)
    return reading.result()


def _unstorable(saft: SaftFile, org: str | None) -> list[str]:
    """What the file says that this product cannot store, in Norwegian."""
    problems = []
    if org is None:
        problems.append(
            f"Organisasjonsnummeret i filen («{saft.registration_number}» i "
            "Header/Company/RegistrationNumber) er ikke et gyldig norsk organisasjonsnummer."
        )
    if not saft.has_chart and not saft.has_entries:
        problems.append(
            "Filen har verken kontoplan (MasterFiles/GeneralLedgerAccounts) eller posteringer "
            "(GeneralLedgerEntries), så det er ingenting å importere."
        )
    ids = [*saft.accounts, *(a for a in saft.movements if a not in saft.accounts)]
    bad = [a for a in ids if not (a.isascii() and a.isdigit() and len(a) <= MAX_ACCOUNT_DIGITS)]
    if bad:
        shown = ", ".join(f"«{a}»" for a in bad[:5])
        problems.append(
            f"Kontonumrene må være tall med høyst {MAX_ACCOUNT_DIGITS} sifre, men filen har "
            f"{shown}{' med flere' if len(bad) > 5 else ''}."
        )
        return problems
    by_number: dict[int, list[str]] = {}
    for account_id in ids:
        by_number.setdefault(int(account_id), []).append(account_id)
    if clashes := [names for names in by_number.values() if len(names) > 1]:
        shown = ", ".join(" og ".join(f"«{n}»" for n in names) for names in clashes[:3])
        problems.append(f"Kontonumrene {shown} er samme tall; kontoene kan ikke skilles.")
    start = selection_start(saft)
    if start is not None and saft.movements:
        earliest = min(month_of(y, p) for periods in saft.movements.values() for y, p in periods)
        if earliest < start:
            problems.append(
                f"Filen har posteringer i {earliest.month:02d}.{earliest.year}, før "
                f"utvalgsperioden starter ({start.month:02d}.{start.year}: "
                "Header/SelectionCriteria). Eksporter filen på nytt med riktig periode."
            )
    return problems


def is_balance_account(account_id: str) -> bool:
    """Whether an account carries its balance into the next year (see BALANCE_DIGITS)."""
    return account_id.lstrip("0")[:1] in BALANCE_DIGITS


def month_of(year: int, period: int) -> Month:
    return Month(year, min(max(period, 1), 12))


@dataclass(frozen=True)
class Coverage:
    """The months a file replaces: from its first to its last month for a whole file (a
    month without lines becomes empty), only the months its lines touch for a period file
    (several period files may share one selection), none for a master file."""

    first: Month  # the month the file's opening balances are for (a whole or master file)
    last: Month
    replaced: tuple[Month, ...]


def selection_start(saft: SaftFile) -> Month | None:
    p = saft.period
    if p.start_year and p.start_period is not None:
        return month_of(p.start_year, p.start_period)
    if p.start_date:
        return Month(p.start_date.year, p.start_date.month)
    return None


def coverage(saft: SaftFile) -> Coverage:
    p = saft.period
    lines = sorted({month_of(y, m) for periods in saft.movements.values() for (y, m) in periods})
    bounds = list(lines)
    if (start := selection_start(saft)) is not None:
        bounds.append(start)
    if p.end_year and p.end_period is not None:
        bounds.append(month_of(p.end_year, p.end_period))
    elif p.end_date:
        bounds.append(Month(p.end_date.year, p.end_date.month))
    if not bounds:  # no selection and no lines: the file's openings stand for this year
        bounds.append(Month(date.today().year, 1))
    first, last = min(bounds), max(bounds)
    if not saft.has_entries:
        replaced: tuple[Month, ...] = ()
    elif not saft.has_chart:
        replaced = tuple(lines)
    else:
        replaced = tuple(_months_between(first, last))
    return Coverage(first, last, replaced)


def _months_between(first: Month, last: Month) -> list[Month]:
    months, (year, month) = [], (first.year, first.month)
    while (year, month) <= (last.year, last.month):
        months.append(Month(year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


async def _store(
    db: AsyncSession,
    integration: Integration,
    row: SaftImport,
    saft: SaftFile,
    org: str,
    spool: Spool,
) -> None:
    assert integration.id is not None and row.id is not None
    covered = coverage(saft)
    client, newest = await _client_for(db, integration.id, saft, org, covered)
    assert client.id is not None
    # A master file (no entries) leaves the months alone; a period file (no chart) leaves
    # the chart and the openings alone.
    months: dict[Month, Amounts] = {m: {} for m in covered.replaced}
    for account_id, periods in saft.movements.items():
        number = int(account_id)
        for (year, period), amount in periods.items():
            month = month_of(year, period)
            months[month][number] = months[month].get(number, ZERO) + amount
    openings = await _openings(db, client.id, saft, covered, months) if saft.has_chart else {}
    accounts = (
        None
        if not saft.has_chart
        else [
            RemoteAccount(
                erp_id=int(a.account_id),
                number=int(a.account_id),
                name=a.description[:300],
                grouping_category=a.grouping_category,
                grouping_code=a.grouping_code,
            )
            for a in saft.accounts.values()
        ]
    )
    await store(
        db,
        client.id,
        Batch(accounts=accounts, months=months, openings=openings),
        mirror_deletions=client.delete_accounts,
        whole_chart=newest,
    )
    # The lines behind the movements, replaced month for month as the movements are.
    await store_lines(db, client.id, row.id, covered.replaced, spool)
    row.lines_kept = True
    now = utcnow()
    client.synced_at, client.sync_status, client.updated_at = now, SyncStatus.OK, now
    client.sync_error, client.sync_failures = None, 0
    if newest:
        client_service.describe(client, saft.company_name[:300] or org, org)
    db.add(client)
    row.client_id = client.id
    row.status, row.finished_at, row.progress_bytes = ImportStatus.IMPORTED, now, row.size_bytes
    row.audit_file_version = saft.audit_file_version
    row.company_name, row.org_number = saft.company_name[:300], org
    row.first_year, row.first_month = covered.first.year, covered.first.month
    row.last_year, row.last_month = covered.last.year, covered.last.month
    row.account_count = len(saft.accounts)
    row.transaction_count, row.line_count = saft.transaction_count, saft.line_count
    row.findings_omitted = saft.findings_omitted
    db.add(row)
    await db.flush()
    if saft.findings:
        await db.exec(insert(FINDINGS), params=[_finding(row.id, f) for f in saft.findings])  # type: ignore[call-overload]


async def _client_for(
    db: AsyncSession, integration_id: int, saft: SaftFile, org: str, covered: Coverage
) -> tuple[Client, bool]:
    """The company's client (made on its first file), and whether this file is its newest
    (then its name and chart of accounts are the client's)."""
    found = await db.exec(
        select(Client).where(
            col(Client.integration_id) == integration_id, col(Client.erp_id) == int(org)
        )
    )
    client = found.first()
    if client is None:
        client = Client(
            integration_id=integration_id,
            erp_id=int(org),
            name="",
            sort_key="",
            search_text="",
            active=True,
            send_data=True,
        )
        client_service.describe(client, saft.company_name[:300] or org, org)
        db.add(client)
        await db.flush()
        return client, True
    latest = await db.exec(
        select(func.max(col(SaftImport.last_year) * 100 + col(SaftImport.last_month))).where(
            col(SaftImport.client_id) == client.id,
            col(SaftImport.status) == ImportStatus.IMPORTED,
        )
    )
    newest_stored = latest.one() or 0
    return client, covered.last.year * 100 + covered.last.month >= newest_stored


async def _openings(
    db: AsyncSession,
    client_id: int,
    saft: SaftFile,
    covered: Coverage,
    months: dict[Month, Amounts],
) -> dict[int, Amounts]:
    """Per year the file covers, the opening balances on 1 January (see the module's
    docstring)."""
    first = covered.first
    in_file: Amounts = {int(a.account_id): a.opening for a in saft.accounts.values()}
    before = await _stored_before(db, client_id, first) if first.month > 1 else {}
    # Stored months before the file stay: 1 January's opening is what brings the balance
    # into the file's first month to the file's opening.
    openings = {
        first.year: {n: in_file.get(n, ZERO) - before.get(n, ZERO) for n in in_file | before}
    }
    balance = dict(in_file)
    carried = {int(a) for a in (*saft.accounts, *saft.movements) if is_balance_account(a)}
    later_years = range(first.year, covered.last.year) if saft.has_entries else range(0)
    for year in later_years:
        for month, amounts in months.items():
            if month.year == year:
                for number, amount in amounts.items():
                    balance[number] = balance.get(number, ZERO) + amount
        balance = {n: a for n, a in balance.items() if n in carried}
        openings[year + 1] = dict(balance)
    return openings


async def _stored_before(db: AsyncSession, client_id: int, first: Month) -> Amounts:
    rows = await db.exec(
        select(MonthMovement.account_number, func.sum(MonthMovement.amount))
        .where(
            col(MonthMovement.client_id) == client_id,
            col(MonthMovement.year) == first.year,
            col(MonthMovement.month) < first.month,
        )
        .group_by(col(MonthMovement.account_number))
    )
    return dict(rows.all())


def _finding(import_id: int, finding: Finding) -> dict[str, object]:
    values: dict[str, object] = {
        "import_id": import_id,
        "message": finding.describe()[:500],
        **{name: None for name in _FINDING_FIELDS},
    }
    match finding:
        case OpeningsUnbalanced():
            values.update(kind=FindingKind.OPENINGS_UNBALANCED, total=finding.total)
        case ClosingMismatch():
            values.update(
                kind=FindingKind.CLOSING_MISMATCH,
                account=finding.account_id,
                opening=finding.opening,
                movements=finding.movements,
                computed_closing=finding.computed_closing,
                file_closing=finding.file_closing,
            )
        case UnbalancedTransaction():
            values.update(
                kind=FindingKind.UNBALANCED_TRANSACTION,
                transaction_id=finding.transaction_id[:70],
                journal_id=finding.journal_id[:70],
                period_year=finding.period_year,
                period=finding.period,
                line=finding.line,
                debit=finding.debit,
                credit=finding.credit,
            )
        case UnknownAccount():
            values.update(
                kind=FindingKind.UNKNOWN_ACCOUNT,
                account=finding.account_id,
                line_count=finding.line_count,
                movements=finding.movement,
            )
    return values


_FINDING_FIELDS = (
    "account", "transaction_id", "journal_id", "period_year", "period", "line", "line_count",
    "opening", "movements", "computed_closing", "file_closing", "debit", "credit", "total",
)  # fmt: skip


async def _close(
    factory: SessionFactory,
    import_id: int,
    status: ImportStatus,
    problems: list[str],
    finishing: Finishing,
) -> SaftImport:
    async with factory() as db:
        row = await db.get(SaftImport, import_id)
        if row is None:  # its integration was deleted meanwhile: nothing left to record
            return SaftImport(id=import_id, integration_id=0, source="", file_name="",
                              status=status, problems="\n".join(problems))  # fmt: skip
        row.status, row.finished_at = status, utcnow()
        row.problems = "\n".join(problems)
        db.add(row)
        await finishing(db, row)
        await db.commit()
        return row


def _display_name(file_name: str) -> str:
    """The sender's name for the file, for showing only: its last part, printable, short."""
    name = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or "uten navn"
