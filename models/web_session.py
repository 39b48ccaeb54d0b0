from datetime import datetime

from sqlmodel import Field, SQLModel


class WebSession(SQLModel, table=True):
    """Server-side login sessions, shared by every app process on one database."""

    __tablename__ = "web_session"

    key: str = Field(primary_key=True, max_length=100)
    data: bytes
    expires_at: datetime | None = Field(default=None, index=True)
