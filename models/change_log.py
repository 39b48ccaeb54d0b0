"""The change log: every change of a client's data in commit order, which downstream products
read incrementally (`GET /api/v1/changes`) and the outbound notifications are made from."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer
from sqlmodel import Field, SQLModel

from models.base import utcnow

# A 64-bit id on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ChangeKind(StrEnum):
    BALANCES = "balances"  # a month's movements (month set) or a year's openings (month null)
    ACCOUNTS = "accounts"  # the chart of accounts
    CLIENT_ACTIVATED = "client_activated"  # AKTIV switched on
    CLIENT_DEACTIVATED = "client_deactivated"  # AKTIV switched off
    CLIENT_PUBLISHED = "client_published"  # SEND DATA switched on: read the client afresh
    SYNC_FAILED = "sync_failed"  # syncs have failed persistently


class DataChange(SQLModel, table=True):
    """One change of a client's data, in commit order by id: what `GET /api/v1/changes`
    and the outbound notifications are made from."""

    __tablename__ = "data_change"
    __table_args__ = (Index("ix_data_change_office_id", "office_id", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    office_id: int = Field(foreign_key="office.id", ondelete="CASCADE")
    client_id: int = Field(foreign_key="client.id", ondelete="CASCADE", index=True)
    kind: str = Field(max_length=30)
    year: int | None = None
    month: int | None = None
    changed_at: datetime = Field(default_factory=utcnow)
