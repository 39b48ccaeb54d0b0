"""Reading SAF-T imports: an integration's and a client's history, one import with its
findings, and what the pages and the API say about each (Norwegian)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Integration, SaftFinding, SaftImport
from models.base import utcnow
from models.saft import ImportStatus
from services import balances
from services.balances import MONTHS
from services.saft.importer import STALE_AFTER

STATUS_LABELS = {
    ImportStatus.RUNNING: "Importerer",
    ImportStatus.IMPORTED: "Importert",
    ImportStatus.UNCHANGED: "Uendret",
    ImportStatus.REFUSED: "Avvist",
    ImportStatus.FAILED: "Feilet",
}
INTERRUPTED_LABEL = "Avbrutt"


def is_interrupted(row: SaftImport, now: datetime | None = None) -> bool:
    """Still "running" but silent (no heartbeat) for long: its process was stopped or
    killed, and nothing of it was stored (the import writes in one transaction at its end)."""
    if row.status != ImportStatus.RUNNING:
        return False
    beat = row.heartbeat_at if row.heartbeat_at.tzinfo else row.heartbeat_at.replace(tzinfo=UTC)
    return (now or utcnow()) - beat > STALE_AFTER


def status_label(row: SaftImport) -> str:
    return INTERRUPTED_LABEL if is_interrupted(row) else STATUS_LABELS[ImportStatus(row.status)]


def status_of(row: SaftImport) -> str:
    """The status the API reports: an interrupted import is "failed"."""
    return ImportStatus.FAILED if is_interrupted(row) else row.status


def period_label(row: SaftImport) -> str:
    """'januar–desember 2024', 'november 2024–februar 2025', or '' before it is known."""
    if None in (row.first_year, row.first_month, row.last_year, row.last_month):
        return ""
    first = MONTHS[(row.first_month or 1) - 1]
    last = MONTHS[(row.last_month or 1) - 1]
    if row.first_year == row.last_year:
        if row.first_month == row.last_month:
            return f"{first} {row.first_year}"
        return f"{first}–{last} {row.last_year}"
    return f"{first} {row.first_year}–{last} {row.last_year}"


def progress_percent(row: SaftImport) -> int:
    if row.status != ImportStatus.RUNNING:
        return 100
    if not row.size_bytes:
        return 0
    return min(99, row.progress_bytes * 100 // row.size_bytes)


def problems_of(row: SaftImport) -> list[str]:
    return [p for p in (row.problems or "").split("\n") if p]


async def imports_of_integration(
    db: AsyncSession, integration_id: int, limit: int = 20
) -> list[SaftImport]:
    rows = await db.exec(
        select(SaftImport)
        .where(col(SaftImport.integration_id) == integration_id)
        .order_by(col(SaftImport.id).desc())
        .limit(limit)
    )
    return list(rows.all())


async def imports_of_client(db: AsyncSession, client_id: int, limit: int = 20) -> list[SaftImport]:
    rows = await db.exec(
        select(SaftImport)
        .where(col(SaftImport.client_id) == client_id)
        .order_by(col(SaftImport.id).desc())
        .limit(limit)
    )
    return list(rows.all())


async def latest_imports(db: AsyncSession, client_ids: list[int]) -> dict[int, SaftImport]:
    """Per client, its latest import that stored or matched data (what "Sist importert",
    the file's name and its period show)."""
    if not client_ids:
        return {}
    latest = (
        select(func.max(SaftImport.id))
        .where(
            col(SaftImport.client_id).in_(client_ids),
            col(SaftImport.status).in_([ImportStatus.IMPORTED, ImportStatus.UNCHANGED]),
        )
        .group_by(col(SaftImport.client_id))
    )
    rows = await db.exec(select(SaftImport).where(col(SaftImport.id).in_(latest)))
    return {row.client_id: row for row in rows.all() if row.client_id is not None}


async def latest_stored(db: AsyncSession, client_id: int) -> SaftImport | None:
    """The client's newest file that stored data: the one whose last month is latest (an
    older year imported later does not take its place), the latest import among equals.
    Its findings, name and period are what the client page shows."""
    rows = await db.exec(
        select(SaftImport)
        .where(
            col(SaftImport.client_id) == client_id,
            col(SaftImport.status) == ImportStatus.IMPORTED,
        )
        .order_by(
            col(SaftImport.last_year).desc(),
            col(SaftImport.last_month).desc(),
            col(SaftImport.id).desc(),
        )
        .limit(1)
    )
    return rows.first()


async def get_import(
    db: AsyncSession, office_id: int, import_id: int
) -> tuple[SaftImport, Integration] | None:
    """An import of one of the office's integrations; None for anyone else's."""
    rows = await db.exec(
        select(SaftImport, Integration)
        .join(Integration, col(Integration.id) == col(SaftImport.integration_id))
        .where(col(SaftImport.id) == import_id, col(Integration.office_id) == office_id)
    )
    found = rows.first()
    return (found[0], found[1]) if found else None


async def findings_of(db: AsyncSession, import_id: int, limit: int = 1000) -> list[SaftFinding]:
    rows = await db.exec(
        select(SaftFinding)
        .where(col(SaftFinding.import_id) == import_id)
        .order_by(col(SaftFinding.id))
        .limit(limit)
    )
    return list(rows.all())


async def finding_count(db: AsyncSession, import_id: int) -> int:
    return (await finding_counts(db, [import_id])).get(import_id, 0)


async def finding_counts(db: AsyncSession, import_ids: list[int]) -> dict[int, int]:
    if not import_ids:
        return {}
    rows = await db.exec(
        select(SaftFinding.import_id, func.count())
        .where(col(SaftFinding.import_id).in_(import_ids))
        .group_by(col(SaftFinding.import_id))
    )
    return dict(rows.all())


async def offer(db: AsyncSession, client_id: int) -> balances.Offer:
    """The saldobalanse's years of a client whose data arrives as files, and its latest
    file's last month as the default period."""
    latest = await latest_stored(db, client_id)
    newest = None
    if latest and latest.last_year and latest.last_month:
        newest = balances.Period(latest.last_year, latest.last_month, latest.last_month)
    return await balances.imported_offer(db, client_id, newest)


async def first_month_covered(db: AsyncSession, client_id: int, year: int) -> int | None:
    """The first month of `year` that the client's imported files cover (1 when a file
    began in an earlier year); None when none covers the year."""
    rows = await db.exec(
        select(SaftImport.first_year, SaftImport.first_month).where(
            col(SaftImport.client_id) == client_id,
            col(SaftImport.status) == ImportStatus.IMPORTED,
            col(SaftImport.first_year) <= year,
            col(SaftImport.last_year) >= year,
        )
    )
    months = [1 if first_year < year else month for first_year, month in rows.all()]
    return min(months) if months else None
