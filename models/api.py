"""What the office's downstream products see: API tokens, the change log they read
incrementally, and the outbound notifications (webhook endpoint, deliveries, attempts)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, Text
from sqlmodel import Field, SQLModel

from models.base import utcnow

# A 64-bit id on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ApiToken(SQLModel, table=True):
    """A bearer token of one office. The token itself is shown once; only its hash is kept."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    # The first characters, to tell tokens apart in the list ("erpapi_AbCd…").
    prefix: str = Field(max_length=20)
    token_hash: str = Field(max_length=64, unique=True)  # sha256 hex of the whole token
    created_by: str = Field(default="", max_length=320)
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


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


class NotificationEndpoint(SQLModel, table=True):
    """An office's webhook: where changes are POSTed, signed as Standard Webhooks says."""

    __tablename__ = "notification_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", ondelete="CASCADE", unique=True)
    url: str = Field(max_length=2000)
    secret_ciphertext: str  # "whsec_…", encrypted with the KeyVault
    enabled: bool = True
    # The last data_change turned into deliveries (or skipped) for this endpoint.
    last_change_id: int = Field(default=0, sa_type=BigInteger)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every retry used up


class NotificationDelivery(SQLModel, table=True):
    """One event for one endpoint, delivered with retries until it succeeds or gives up."""

    __tablename__ = "notification_delivery"
    __table_args__ = (
        Index("ix_notification_delivery_due", "status", "next_attempt_at"),
        Index("ix_notification_delivery_endpoint", "endpoint_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    endpoint_id: int = Field(foreign_key="notification_endpoint.id", ondelete="CASCADE")
    message_id: str = Field(max_length=40, unique=True)  # webhook-id: the same on every retry
    event_type: str = Field(max_length=40)
    client_id: int | None = None
    payload: str = Field(sa_type=Text)  # the exact JSON body that is signed and sent
    status: str = Field(default=DeliveryStatus.PENDING, max_length=20)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default_factory=utcnow)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None


class NotificationAttempt(SQLModel, table=True):
    """One POST of a delivery: the leveranselogg shows these."""

    __tablename__ = "notification_attempt"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    delivery_id: int = Field(
        foreign_key="notification_delivery.id", ondelete="CASCADE", index=True, sa_type=BigInteger
    )
    attempted_at: datetime = Field(default_factory=utcnow)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=300)
    duration_ms: int = 0
    ok: bool = False
