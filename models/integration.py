from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import utcnow


class KeyKind(StrEnum):
    ACCOUNTANT = "accountant"  # acts for the client companies granted to it
    OWN_COMPANY = "own_company"  # the office's own ledger: exactly one client


class Integration(SQLModel, table=True):
    """One ERP key of an office and the client companies it reaches."""

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True, ondelete="CASCADE")
    system: str = Field(default="tripletex", max_length=40)
    description: str = Field(max_length=200)
    key_ciphertext: str
    key_last4: str = Field(max_length=4)
    key_kind: str = Field(max_length=20)
    # The company that owns the key (the office itself in Tripletex).
    erp_company_id: int = Field(sa_type=BigInteger)
    erp_company_name: str = Field(max_length=300)
    clients_refreshed_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Client(SQLModel, table=True):
    """A client company reached through an integration, with the accountant's switches."""

    __table_args__ = (
        UniqueConstraint("integration_id", "erp_id"),
        Index("ix_client_integration_sort", "integration_id", "sort_key"),
    )

    id: int | None = Field(default=None, primary_key=True)
    integration_id: int = Field(foreign_key="integration.id", ondelete="CASCADE")
    erp_id: int = Field(sa_type=BigInteger)
    name: str = Field(max_length=300)
    org_number: str = Field(default="", max_length=20)
    # Derived from name: Norwegian alphabetical order (æ, ø, å after z), case-insensitive.
    sort_key: str = Field(max_length=300)
    # Derived: what the search box matches (case-folded name and org number).
    search_text: str = Field(max_length=400)
    active: bool = False
    send_data: bool = True
    full_sync: bool = False
    delete_accounts: bool = False
    is_new: bool = False
    access_lost: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
