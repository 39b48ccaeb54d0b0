from datetime import datetime

from sqlalchemy import BigInteger, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import utcnow


class Integration(SQLModel, table=True):
    """One ERP key of an office and the client companies it reaches."""

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True, ondelete="CASCADE")
    system: str = Field(max_length=40)  # the connector's (services/connectors/registry.py)
    description: str = Field(max_length=200)
    key_ciphertext: str
    key_last4: str = Field(max_length=4)
    key_kind: str = Field(max_length=20)  # services.connectors.base.KeyKind
    # The company that owns the key (the office itself, for an accountant key).
    erp_company_id: int = Field(sa_type=BigInteger)
    erp_company_name: str = Field(max_length=300)
    clients_refreshed_at: datetime | None = None
    # "invalid" after the system refused the key (401): its clients wait for Endre system.
    key_status: str = Field(default="ok", max_length=20)
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
    # A system that gives a key per client (PowerOffice Go's client key), encrypted like
    # Integration.key_ciphertext; None: the client is reached with the integration's key.
    key_ciphertext: str | None = None
    # Sync state, owned by the sync engine.
    sync_status: str = Field(default="never", max_length=20)  # see services/sync/status.py
    sync_error: str | None = Field(default=None, max_length=500)
    # Failed syncs in a row: passing trouble is retried quietly, persistent trouble shown.
    sync_failures: int = 0
    synced_at: datetime | None = None
    sync_due_at: datetime | None = Field(default=None, index=True)
    # How changes reach us: webhooks, or polling (see models/change_events.LiveMode).
    live_mode: str = Field(default="polling", max_length=20)
    progress_done: int = 0
    progress_total: int = 0
    # Lease: the process syncing this client now, until when (expired = free to claim).
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PendingPeriod(SQLModel, table=True):
    """A month of a client known to have changed (from a webhook or a poll), waiting for the
    next incremental sync. The key makes a burst of events for one month one row."""

    __tablename__ = "pending_period"

    client_id: int = Field(foreign_key="client.id", ondelete="CASCADE", primary_key=True)
    year: int = Field(primary_key=True)
    month: int = Field(primary_key=True)
    noted_at: datetime = Field(default_factory=utcnow)
    # Who noted it (webhook, nightly): what the sync history names as the run's trigger.
    source: str = Field(default="webhook", max_length=20)
