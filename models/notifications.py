"""Outbound notifications to the office's own products: endpoints, deliveries, attempts.
(Inbound change events from the accounting systems are models/change_events.py.)"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Text
from sqlmodel import Field, SQLModel

from models.base import utcnow
from models.change_log import BigId


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
