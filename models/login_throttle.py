from datetime import datetime

from sqlmodel import Field, SQLModel


class LoginThrottle(SQLModel, table=True):
    """Recent failed logins of one account (its e-mail, known or not) or one client address,
    in the database so every app process counts the same failures."""

    __tablename__ = "login_throttle"

    kind: str = Field(primary_key=True, max_length=10)  # "account" or "address"
    subject: str = Field(primary_key=True, max_length=320)
    failures: int = 0
    last_failure_at: datetime = Field(index=True)
    locked_until: datetime | None = None
