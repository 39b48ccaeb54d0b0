"""SAF-T Financial imports: one row per file received, the file's findings (where it
disagrees with itself), kept with the import they came from, and the transaction lines
behind a SAF-T client's movements (the drill-down from its saldobalanse)."""

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Text
from sqlmodel import Field, SQLModel

from models.base import utcnow
from models.money import Money


class ImportStatus(StrEnum):
    RUNNING = "running"
    IMPORTED = "imported"
    UNCHANGED = "unchanged"  # the same file (by content hash) was imported before
    REFUSED = "refused"  # not accepted: nothing of it stored
    FAILED = "failed"  # our fault or interrupted: nothing of it stored


class SaftImport(SQLModel, table=True):
    """One SAF-T file received for an integration: what it was, what came of it."""

    __tablename__ = "saft_import"
    __table_args__ = (
        Index("ix_saft_import_integration_started", "integration_id", "started_at"),
        Index("ix_saft_import_client_started", "client_id", "started_at"),
        Index("ix_saft_import_sha256", "integration_id", "sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integration.id", ondelete="CASCADE")
    # Set once the file's company is known and stored (never for a refused file).
    client_id: int | None = Field(default=None, foreign_key="client.id", ondelete="CASCADE")
    source: str = Field(max_length=20)  # upload, api, command
    # As the sender named it: shown, never used as a path.
    file_name: str = Field(max_length=255)
    sha256: str = Field(default="", max_length=64)
    size_bytes: int = Field(default=0, sa_type=BigInteger)
    progress_bytes: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(default=ImportStatus.RUNNING, max_length=20)
    audit_file_version: str = Field(default="", max_length=10)
    company_name: str = Field(default="", max_length=300)
    org_number: str = Field(default="", max_length=20)
    first_year: int | None = None
    first_month: int | None = None
    last_year: int | None = None
    last_month: int | None = None
    account_count: int = 0
    transaction_count: int = 0
    line_count: int = 0
    # Findings beyond those stored (a file with very many unbalanced transactions).
    findings_omitted: int = 0
    # Whether this import stored its transaction lines (saft_line): imports from before
    # lines were kept did not, so the same file again is imported anew, not "uendret".
    lines_kept: bool = False
    # Why a file was refused or failed: Norwegian sentences, one per line.
    problems: str | None = Field(default=None, sa_type=Text)
    started_at: datetime = Field(default_factory=utcnow)
    # Written while the import runs (hashing, reading, storing): silent for long, it died.
    heartbeat_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class FindingKind(StrEnum):
    OPENINGS_UNBALANCED = "openings_unbalanced"
    CLOSING_MISMATCH = "closing_mismatch"
    UNBALANCED_TRANSACTION = "unbalanced_transaction"
    UNKNOWN_ACCOUNT = "unknown_account"


class SaftFinding(SQLModel, table=True):
    """Where an imported file disagrees with itself; the figures are the file's own."""

    __tablename__ = "saft_finding"

    id: int | None = Field(default=None, primary_key=True)
    import_id: int = Field(foreign_key="saft_import.id", ondelete="CASCADE", index=True)
    kind: str = Field(max_length=30)
    account: str | None = Field(default=None, max_length=70)
    transaction_id: str | None = Field(default=None, max_length=70)
    journal_id: str | None = Field(default=None, max_length=70)
    period_year: int | None = None
    period: int | None = None
    line: int | None = None  # the line in the file
    line_count: int | None = None
    opening: Decimal | None = Field(default=None, sa_type=Money)
    movements: Decimal | None = Field(default=None, sa_type=Money)
    computed_closing: Decimal | None = Field(default=None, sa_type=Money)
    file_closing: Decimal | None = Field(default=None, sa_type=Money)
    debit: Decimal | None = Field(default=None, sa_type=Money)
    credit: Decimal | None = Field(default=None, sa_type=Money)
    total: Decimal | None = Field(default=None, sa_type=Money)
    message: str = Field(max_length=500)  # the finding in Norwegian, as shown


class SaftLine(SQLModel, table=True):
    """One transaction line of an imported file, on the client and month its movement went
    to (a period beyond 12 in December, period 0 in January, as the movements count). A
    month's lines come from the one file that last replaced the month, as its movements do;
    they go with the client (and so with the integration).

    The primary key is the drill-down's question (a client's account over months), and
    `seq` the line's place in its file. No surrogate id: files bring millions of lines.
    On SQLite the table is its key (WITHOUT ROWID): one B-tree instead of two."""

    __tablename__ = "saft_line"
    __table_args__ = {"sqlite_with_rowid": False}

    client_id: int = Field(foreign_key="client.id", ondelete="CASCADE", primary_key=True)
    account_number: int = Field(primary_key=True)
    year: int = Field(primary_key=True)
    month: int = Field(primary_key=True)
    seq: int = Field(primary_key=True)  # the line's place in its file, from 1
    # The import that brought it (saft_import.id); no foreign key, so that deleting an
    # import row never scans millions of lines.
    import_id: int
    posted_on: date  # Transaction/TransactionDate
    voucher: str = Field(default="", max_length=70)  # Transaction/TransactionID
    description: str = Field(default="", max_length=256)  # the line's, else the transaction's
    amount: Decimal = Field(sa_type=Money)  # debit positive, credit negative
