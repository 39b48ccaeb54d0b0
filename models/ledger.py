from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import utcnow
from models.money import Money


class Account(SQLModel, table=True):
    """One account of a client's chart of accounts, as the ERP last showed it."""

    __table_args__ = (
        UniqueConstraint("client_id", "erp_id"),
        Index("ix_account_client_number", "client_id", "number"),
    )

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", ondelete="CASCADE")
    erp_id: int = Field(sa_type=BigInteger)
    number: int
    name: str = Field(max_length=300)
    type: str = Field(default="", max_length=40)
    is_inactive: bool = False
    is_bank_account: bool = False
    vat_code: str | None = Field(default=None, max_length=20)
    saft_code: str | None = Field(default=None, max_length=20)
    grouping_code: str | None = Field(default=None, max_length=40)
    # SAF-T 1.30's GroupingCategory (with GroupingCode): how the account is reported.
    grouping_category: str | None = Field(default=None, max_length=40)
    # Set when the ERP no longer has the account and SLETT KONTOER is off: kept, flagged.
    removed_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class YearOpening(SQLModel, table=True):
    """An account's balance on 1 January (zero for result accounts)."""

    __tablename__ = "year_opening"

    client_id: int = Field(foreign_key="client.id", ondelete="CASCADE", primary_key=True)
    year: int = Field(primary_key=True)
    account_number: int = Field(primary_key=True)
    amount: Decimal = Field(sa_type=Money)


class MonthMovement(SQLModel, table=True):
    """An account's movement within one month. With the year's opening this gives the
    balance in and out of any month or range of months."""

    __tablename__ = "month_movement"

    client_id: int = Field(foreign_key="client.id", ondelete="CASCADE", primary_key=True)
    year: int = Field(primary_key=True)
    month: int = Field(primary_key=True)
    account_number: int = Field(primary_key=True)
    amount: Decimal = Field(sa_type=Money)


class SyncRun(SQLModel, table=True):
    """One sync of one client: the history the accountant sees."""

    __tablename__ = "sync_run"
    __table_args__ = (Index("ix_sync_run_client_started", "client_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", ondelete="CASCADE")
    kind: str = Field(max_length=20)  # full, incremental
    trigger: str = Field(max_length=20)  # activation, schedule, webhook, poll, manual
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    result: str = Field(default="running", max_length=20)  # running, ok, failed
    requests: int = 0
    retries: int = 0
    periods: int = 0
    error: str | None = Field(default=None, max_length=500)
