"""Every table, imported here so metadata (and Alembic) sees them all."""

from models.api import (
    ApiToken,
    ChangeKind,
    DataChange,
    DeliveryStatus,
    NotificationAttempt,
    NotificationDelivery,
    NotificationEndpoint,
)
from models.integration import Client, Integration, KeyKind, PendingPeriod
from models.ledger import Account, MonthMovement, SyncRun, YearOpening
from models.office import Office, User
from models.web_session import WebSession
from models.webhooks import LiveMode, VoucherMonth, WebhookReceipt, WebhookSubscription

__all__ = [
    "Account",
    "ApiToken",
    "ChangeKind",
    "Client",
    "DataChange",
    "DeliveryStatus",
    "Integration",
    "KeyKind",
    "LiveMode",
    "MonthMovement",
    "NotificationAttempt",
    "NotificationDelivery",
    "NotificationEndpoint",
    "Office",
    "PendingPeriod",
    "SyncRun",
    "User",
    "VoucherMonth",
    "WebSession",
    "WebhookReceipt",
    "WebhookSubscription",
    "YearOpening",
]
