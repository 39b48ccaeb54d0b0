"""monotonic ids: SQLite tables with an integer id become AUTOINCREMENT

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Downstream products keep our ids (API, notifications), so an id once handed out must never
name another row. SQLite gives a plain INTEGER PRIMARY KEY table max(id) + 1, which reuses
the id of the newest row after it is deleted; AUTOINCREMENT never does. PostgreSQL's
sequences never hand a value out twice, so there is nothing to do there.

SQLite cannot add AUTOINCREMENT to a table: each one is rebuilt (copied), with its data,
indexes and foreign keys. migrations/env.py runs SQLite migrations with foreign keys off,
since dropping the old copy of a referenced table would otherwise cascade-delete its
children, and checks every foreign key before it commits.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Ids handed out that are no longer in their table but still stored elsewhere: a deleted
# client's id in the notifications already sent, and a change id an endpoint has sent up to
# (its change rows go when their client is deleted). The sequence starts above them too.
HANDED_OUT = {
    "client": [("notification_delivery", "client_id")],
    "data_change": [("notification_endpoint", "last_change_id")],
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    existing = set(sa.inspect(bind).get_table_names())
    for table in _integer_id_tables(bind, autoincrement=False):
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
        # The copy set the sequence to max(id). Ids freed before this upgrade are unknown,
        # except those still stored elsewhere: start above them too.
        for other, column in HANDED_OUT.get(table, []):
            if other in existing:
                _raise_sequence(bind, table, f"SELECT max({column}) FROM {other}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table in _integer_id_tables(bind, autoincrement=True):
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ):
            pass
        op.execute(f"DELETE FROM sqlite_sequence WHERE name = '{table}'")


def _raise_sequence(bind: sa.Connection, table: str, floor_sql: str) -> None:
    floor = bind.exec_driver_sql(floor_sql).scalar()
    current = bind.exec_driver_sql(
        "SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)
    ).scalar()
    if floor is None or (current is not None and current >= floor):
        return
    bind.exec_driver_sql("DELETE FROM sqlite_sequence WHERE name = ?", (table,))
    bind.exec_driver_sql("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, floor))


def _integer_id_tables(bind: sa.Connection, *, autoincrement: bool) -> list[str]:
    """Tables whose primary key is one integer `id`, as the database has them now (so the
    tables of migrations before this one are covered whoever wrote them)."""
    inspector = sa.inspect(bind)
    sql = dict(
        bind.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).all()
    )
    tables = []
    for name in sorted(sql):
        if inspector.get_pk_constraint(name)["constrained_columns"] != ["id"]:
            continue
        id_type = next(c["type"] for c in inspector.get_columns(name) if c["name"] == "id")
        if isinstance(id_type, sa.Integer) and ("AUTOINCREMENT" in sql[name].upper()) == (
            autoincrement
        ):
            tables.append(name)
    return tables
