"""The transaction lines of imported SAF-T files (table saft_line): what the drill-down from
a SAF-T client's saldobalanse lists.

While a file is read (on the reader's thread, services/saft/importer.py) its lines go to a
`Spool`: a temporary file, written in batches of BATCH lines, so memory does not grow with
the file. Only once the file is accepted are they written to the database, in the import's
own transaction and in batches again (`store_lines`), replacing the lines of the months the
file replaces, exactly as its movements replace theirs. A refused or failed file leaves
nothing but the spool, which is gone when closed.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import IO

from sqlalchemy import bindparam, delete, insert, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import SaftLine
from services.saft.reader import TransactionLine
from services.sync.periods import Month

BATCH = 5000  # lines per spooled batch and per INSERT (executemany)
VOUCHER_MAX = 70
DESCRIPTION_MAX = 256

LINES = SaftLine.__table__  # type: ignore[attr-defined]
Spooled = TransactionLine

_INSERT = insert(LINES)
_DELETE = delete(LINES).where(
    LINES.c.client_id == bindparam("client_id"),
    tuple_(LINES.c.year, LINES.c.month).in_(bindparam("months", expanding=True)),
)


class Spool:
    """Lines kept on disk between reading a file and storing it. `add` runs on the reader's
    thread; `batches` afterwards, once `add` is done."""

    def __init__(self, folder: Path | None = None) -> None:
        self._file = _temporary(folder)
        self._pending: list[Spooled] = []
        self.count = 0

    def add(self, line: TransactionLine) -> None:
        self._pending.append(line)
        self.count += 1
        if len(self._pending) >= BATCH:
            self._write()

    def _write(self) -> None:
        pickle.dump(self._pending, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._pending = []

    def batches(self) -> Iterator[list[Spooled]]:
        """The lines in file order, a batch at a time."""
        if self._pending:
            self._write()
        self._file.flush()
        self._file.seek(0)
        while True:
            try:
                yield pickle.load(self._file)  # our own file, written above
            except EOFError:
                return

    @property
    def size_bytes(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def _temporary(folder: Path | None) -> IO[bytes]:
    """Beside the uploaded file when that folder takes it (the upload folder is on a disk
    meant for big files), else in the system's temporary folder."""
    if folder is not None:
        try:
            return tempfile.TemporaryFile(dir=folder, prefix="saft-lines-")
        except OSError:
            pass
    return tempfile.TemporaryFile(prefix="saft-lines-")


def month_of(year: int, period: int) -> tuple[int, int]:
    """The month a line's movement is counted in (importer.month_of: 13 → 12, 0 → 1)."""
    return year, min(max(period, 1), 12)


async def store_lines(
    db: AsyncSession,
    client_id: int,
    import_id: int,
    replaced: Sequence[Month],
    spool: Spool,
) -> int:
    """Replace the lines of the months `replaced` with the spooled ones, in the caller's
    transaction; the number of lines written. Every spooled line falls in a replaced month
    (the importer's coverage counts the lines' months), so a month's lines are always one
    file's and the same file twice stores them once."""
    if replaced:
        await db.exec(  # type: ignore[call-overload]
            _DELETE,
            params={"client_id": client_id, "months": [(m.year, m.month) for m in replaced]},
        )
    connection = await db.connection()
    write = _WRITERS.get(connection.dialect.name, _write_portable)
    written = 0
    for batch in spool.batches():
        await write(connection, [_row(client_id, import_id, line) for line in batch])
        written += len(batch)
    return written


Row = tuple[int, int, int, int, int, int, date, str, str, Decimal]
COLUMNS = (
    "client_id", "account_number", "year", "month", "seq", "import_id", "posted_on", "voucher",
    "description", "amount",
)  # fmt: skip


def _row(client_id: int, import_id: int, line: Spooled) -> Row:
    seq, account, period_year, period, day, voucher, text, amount = line
    year, month = month_of(period_year, period)
    return (
        client_id,
        int(account),
        year,
        month,
        seq,
        import_id,
        date.fromisoformat(day[:10]),
        voucher[:VOUCHER_MAX],
        text[:DESCRIPTION_MAX],
        amount,
    )


# Millions of rows: written past SQLAlchemy's per-row parameter processing, with the
# values the column types would have made (models/money.py: øre as an integer on SQLite).
async def _write_postgresql(connection: AsyncConnection, rows: list[Row]) -> None:
    """COPY, in the session's transaction (the same asyncpg connection)."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    await driver.copy_records_to_table("saft_line", records=rows, columns=COLUMNS)


_SQLITE_INSERT = (
    f"INSERT INTO saft_line ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)


async def _write_sqlite(connection: AsyncConnection, rows: list[Row]) -> None:
    await connection.exec_driver_sql(
        _SQLITE_INSERT,
        [(*row[:6], row[6].isoformat(), row[7], row[8], int(row[9] * 100)) for row in rows],
    )


async def _write_portable(connection: AsyncConnection, rows: list[Row]) -> None:
    await connection.execute(_INSERT, [dict(zip(COLUMNS, row, strict=True)) for row in rows])


_WRITERS = {"postgresql": _write_postgresql, "sqlite": _write_sqlite}


async def account_lines(
    db: AsyncSession, client_id: int, number: int, year: int, first_month: int, last_month: int
) -> list[SaftLine]:
    """An account's imported lines in the months of a year, by date and then as the file
    had them."""
    rows = await db.exec(
        select(SaftLine)
        .where(
            col(SaftLine.client_id) == client_id,
            col(SaftLine.account_number) == number,
            col(SaftLine.year) == year,
            col(SaftLine.month).between(first_month, last_month),
        )
        .order_by(col(SaftLine.posted_on), col(SaftLine.seq))
    )
    return list(rows.all())
