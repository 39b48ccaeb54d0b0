from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import utcnow


class WebSession(SQLModel, table=True):
    """Server-side login sessions, shared by every app process on one database."""

    __tablename__ = "web_session"

    # sha256 hex of the session id: the id itself lives only in the browser's cookie, so a
    # read of this table (a backup, a SQL injection) hands out no usable session.
    key: str = Field(primary_key=True, max_length=64)
    data: bytes
    # Whose login this is, so changing a password can end that user's other sessions.
    user_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="CASCADE", index=True
    )
    created_at: datetime = Field(default_factory=utcnow)
    # The earlier of the idle expiry and the absolute lifetime's end.
    expires_at: datetime = Field(index=True)
