"""saft lines: the transaction lines of imported SAF-T files (drill-down for SAF-T clients)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from models.money import Money


revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "saft_line",
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("account_number", sa.Integer(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("posted_on", sa.Date(), nullable=False),
        sa.Column("voucher", sqlmodel.sql.sqltypes.AutoString(length=70), nullable=False),
        sa.Column("description", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["client.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("client_id", "account_number", "year", "month", "seq"),
        sqlite_with_rowid=False,
    )
    # Imports made before lines were kept: the same file again is imported anew.
    with op.batch_alter_table("saft_import", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(
            sa.Column("lines_kept", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("saft_import", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("lines_kept")
    op.drop_table("saft_line")
