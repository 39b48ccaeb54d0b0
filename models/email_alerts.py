"""E-mail alerts (Innstillinger → Varsler): where an office wants them, and which problem was
last e-mailed when, so that each problem is e-mailed at most once a day."""

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import utcnow


class EmailAlertSetting(SQLModel, table=True):
    """An office's choice: the address alerts go to, and whether they are sent."""

    __tablename__ = "email_alert_setting"

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", ondelete="CASCADE", unique=True)
    address: str = Field(default="", max_length=320)  # "" only while switched off
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class EmailAlert(SQLModel, table=True):
    """A problem e-mailed to an office, and when: the next e-mail about it waits a day."""

    __tablename__ = "email_alert"
    __table_args__ = (UniqueConstraint("office_id", "problem_key"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", ondelete="CASCADE")
    # What and which: "client:12:failing", "client:12:key", "integration:3:key".
    problem_key: str = Field(max_length=100)
    sent_at: datetime = Field(default_factory=utcnow)
