from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel

from models.base import utcnow


class LiveMode(StrEnum):
    """How a client's changes reach us between nightly reconciles."""

    POLLING = "polling"  # no public URL configured: recent months re-checked on an interval
    WEBHOOKS = "webhooks"  # every subscription active at the ERP
    FALLBACK = "fallback"  # a subscription failed or was disabled: polling until renewed


class WebhookSubscription(SQLModel, table=True):
    """One event subscription at the ERP for one client. `hook_id` is the unguessable part of
    the callback URL that tells the receiver which subscription (and secret) a call is for."""

    __tablename__ = "webhook_subscription"

    id: int | None = Field(default=None, primary_key=True)
    client_id: int = Field(foreign_key="client.id", ondelete="CASCADE", index=True)
    event: str = Field(max_length=40)
    hook_id: str = Field(max_length=64, unique=True)
    secret_ciphertext: str
    # None until the ERP has accepted it.
    erp_subscription_id: int | None = Field(default=None, sa_type=BigInteger)
    erp_status: str = Field(default="PENDING", max_length=40)
    checked_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class WebhookReceipt(SQLModel, table=True):
    """A callback already taken in, by the ERP's idempotency key: a replay is ignored."""

    __tablename__ = "webhook_receipt"

    idempotency_key: str = Field(primary_key=True, max_length=100)
    received_at: datetime = Field(default_factory=utcnow, index=True)


class VoucherMonth(SQLModel, table=True):
    """The month a voucher was last seen in, from callbacks: a voucher moved to another
    month or deleted changes the month it left, which the callback itself does not name."""

    __tablename__ = "voucher_month"

    client_id: int = Field(foreign_key="client.id", ondelete="CASCADE", primary_key=True)
    voucher_id: int = Field(sa_type=BigInteger, primary_key=True)
    year: int
    month: int
