"""Every table, imported here so metadata (and Alembic) sees them all."""

from models.integration import Client, Integration, KeyKind, PendingPeriod
from models.ledger import Account, MonthMovement, SyncRun, YearOpening
from models.office import Office, User
from models.web_session import WebSession

__all__ = [
    "Account",
    "Client",
    "Integration",
    "KeyKind",
    "MonthMovement",
    "Office",
    "PendingPeriod",
    "SyncRun",
    "User",
    "WebSession",
    "YearOpening",
]
