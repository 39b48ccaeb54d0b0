from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import utcnow


class Office(SQLModel, table=True):
    """An accounting office (regnskapskontor): the tenant every row belongs to."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True, ondelete="CASCADE")
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow)
