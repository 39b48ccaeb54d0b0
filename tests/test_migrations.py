"""The schema comes from migrations, and they agree with the models (on the run's backend)."""

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

import models  # noqa: F401
from services.db import alembic_config, create_engine, migrate, migrate_async

pytestmark = pytest.mark.anyio


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


async def test_models_and_migrations_agree(migrated_database: str) -> None:
    engine = create_engine(migrated_database)
    async with engine.connect() as connection:
        diff = await connection.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), SQLModel.metadata)
        )
    await engine.dispose()
    assert diff == []


async def test_every_migration_upgrades_and_downgrades(scratch_url: str) -> None:
    await migrate_async(scratch_url)
    assert {"integration", "client"} <= await table_names(scratch_url)

    def downgrade_all() -> None:
        command.downgrade(alembic_config(scratch_url), "base")

    import anyio

    await anyio.to_thread.run_sync(downgrade_all)
    assert await table_names(scratch_url) <= {"alembic_version"}
    await anyio.to_thread.run_sync(migrate, scratch_url)
    assert {"integration", "client"} <= await table_names(scratch_url)


async def test_upgrade_keeps_existing_integrations_and_clients(scratch_url: str) -> None:
    import anyio
    from sqlalchemy import text

    await anyio.to_thread.run_sync(migrate, scratch_url, "0001")
    engine = create_engine(scratch_url)
    async with engine.begin() as connection:
        await connection.execute(
            text("insert into office (id, name, created_at) values (1, 'K', CURRENT_TIMESTAMP)")
        )
        await connection.execute(
            text(
                "insert into integration (id, office_id, system, description, key_ciphertext, "
                "key_last4, key_kind, erp_company_id, erp_company_name, created_at, updated_at) "
                "values (1, 1, 'tripletex', 'd', 'x', 'abcd', 'accountant', 5, 'K', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        await connection.execute(
            text(
                "insert into client (integration_id, erp_id, name, org_number, sort_key, "
                "search_text, active, send_data, full_sync, delete_accounts, is_new, "
                "access_lost, created_at, updated_at) values (1, 7, 'A', '', 'a', 'a', "
                "true, true, false, false, false, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    await anyio.to_thread.run_sync(migrate, scratch_url)
    async with engine.connect() as connection:
        row = (await connection.execute(text("select sync_status, active from client"))).one()
    await engine.dispose()
    assert tuple(row) == ("never", True)
