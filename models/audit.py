"""The audit log: every change a person or an API token made, and every sign-in."""

from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, Integer, Text
from sqlmodel import Field, SQLModel


class AuditEvent(SQLModel, table=True):
    """One change or sign-in event. Written in the same transaction as the change itself.

    Who is kept as a label (the e-mail or the token's name at the time) beside the ids, so
    the log reads the same after a person or token is renamed or removed. `details` is JSON:
    before/after values, counts, the filter a bulk action used; never a secret's value.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        # Newest first, per office; and the same with each filter in front.
        Index("ix_audit_event_office_at", "office_id", "at", "id"),
        Index("ix_audit_event_office_user_at", "office_id", "actor_user_id", "at", "id"),
        Index("ix_audit_event_office_kind_at", "office_id", "kind", "at", "id"),
        # Person and kind together: a person who seldom acts, with a common kind, would
        # otherwise walk one of the indexes above over a long range.
        Index(
            "ix_audit_event_office_user_kind_at", "office_id", "actor_user_id", "kind", "at", "id"
        ),
        # One client's history ("who turned this client off, and when").
        Index("ix_audit_event_office_client_at", "office_id", "client_id", "at", "id"),
    )

    # A million rows a year is plausible for a large office; SQLite makes only an INTEGER
    # PRIMARY KEY the rowid (it is 64-bit there anyway).
    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    )
    office_id: int = Field(foreign_key="office.id", ondelete="CASCADE")
    at: datetime
    actor_user_id: int | None = Field(
        default=None, foreign_key="user_account.id", ondelete="SET NULL"
    )
    actor_token_id: int | None = Field(
        default=None, foreign_key="api_token.id", ondelete="SET NULL"
    )
    actor_label: str = Field(default="", max_length=320)
    # What happened, a stable dotted name: "client.active", "integration.created", "signin"…
    kind: str = Field(max_length=60)
    # The client the event is about, if any. No foreign key: the history outlives the client.
    client_id: int | None = None
    target_label: str = Field(default="", max_length=300)  # "Klient: Bygg AS (123456789)"
    details: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    address: str = Field(default="", max_length=64)  # client address, for sign-ins
