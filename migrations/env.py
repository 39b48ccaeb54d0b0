"""Alembic environment: async engines for SQLite and PostgreSQL alike."""

import asyncio

from alembic import context
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import models  # noqa: F401  (registers every table on the metadata)
from services.db import create_engine

target_metadata = SQLModel.metadata


def database_url() -> str:
    url = context.config.attributes.get("database_url")
    if not url:
        from services.settings import Settings

        url = Settings.from_env().database_url
    return url


def run_with(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by copying it and dropping the old one, and with foreign keys
        # on, a dropped table's rows are deleted first, cascading into the tables that
        # reference it (every client gone with its integration's copy). SQLite's own recipe:
        # foreign keys off, outside a transaction (the pragma is ignored in one), and each
        # migration checked before it commits.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=True,
        on_version_apply=[_check_foreign_keys] if sqlite else [],
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together: one migrates, the others wait and find it done.
            connection.execute(text("SELECT pg_advisory_xact_lock(7425100)"))
        context.run_migrations()
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def _check_foreign_keys(ctx: MigrationContext, step: object, **_: object) -> None:
    broken = ctx.connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise RuntimeError(f"migration {step} leaves rows with broken foreign keys: {broken[:5]}")


async def run_online() -> None:
    engine = create_engine(database_url())
    async with engine.connect() as connection:
        await connection.run_sync(run_with)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_online())
