"""The schema comes from migrations, and they agree with the models."""

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

import models  # noqa: F401
from services.db import alembic_config, migrate


def test_models_and_migrations_agree(template_db: Path) -> None:
    engine = create_engine(f"sqlite:///{template_db}")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    engine.dispose()
    assert diff == []


def test_every_migration_upgrades_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'roundtrip.sqlite3'}"
    migrate(url)
    command.downgrade(alembic_config(url), "base")
    engine = create_engine(f"sqlite:///{tmp_path / 'roundtrip.sqlite3'}")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate(url)
