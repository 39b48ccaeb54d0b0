"""Every table, imported here so metadata (and Alembic) sees them all."""

from models.integration import Client, Integration, KeyKind, PendingPeriod
from models.ledger import Account, MonthMovement, SyncRun, YearOpening
from models.office import Office, User
from models.web_session import WebSession
from models.webhooks import LiveMode, WebhookReceipt, WebhookSubscription

__all__ = [
    "Account",
    "Client",
    "Integration",
    "KeyKind",
    "LiveMode",
    "MonthMovement",
    "Office",
    "PendingPeriod",
    "SyncRun",
    "User",
    "WebSession",
    "WebhookReceipt",
    "WebhookSubscription",
    "YearOpening",
]
