"""audit log: the client an event is about, for one client's history

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table(
        "audit_event", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.add_column(sa.Column("client_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_audit_event_office_client_at",
            ["office_id", "client_id", "at", "id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table(
        "audit_event", schema=None, table_kwargs={"sqlite_autoincrement": True}
    ) as batch_op:
        batch_op.drop_index("ix_audit_event_office_client_at")
        batch_op.drop_column("client_id")
