"""Every table, imported here so metadata (and Alembic) sees them all."""

from models.integration import Client, Integration, KeyKind
from models.office import Office, User
from models.web_session import WebSession

__all__ = ["Client", "Integration", "KeyKind", "Office", "User", "WebSession"]
