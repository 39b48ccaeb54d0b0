"""Engine, sessions and migrations. One way to get a database session everywhere."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
from alembic import command
from alembic.config import Config
from sqlalchemy import Insert, Table, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

ROOT = Path(__file__).resolve().parent.parent

SessionFactory = async_sessionmaker[AsyncSession]
T = TypeVar("T")


def upsert(db: AsyncSession, build: Callable[[Callable[[Table], Insert]], T]) -> T:
    """An INSERT with ON CONFLICT in the session's dialect: both have one, spelled alike,
    but SQLAlchemy's generic insert() has none. `build` gets the dialect's insert(); what it
    builds is kept, one per dialect, because these statements run on hot paths (building a
    statement costs more of our CPU than running it)."""
    return _built(db.get_bind().dialect.name, build)


@functools.cache
def _built(dialect: str, build: Callable[[Callable[[Table], Insert]], T]) -> T:
    return build(pg_insert if dialect == "postgresql" else sqlite_insert)  # type: ignore[arg-type]


# Connections kept open: enough for the syncs, callbacks and pages of a busy moment. With
# SQLAlchemy's default (5) the rest were opened and closed per use, and an aiosqlite
# connection is a new thread each time (bench/README.md).
POOL = {"pool_size": 20, "max_overflow": 20}


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a SQLite URL; None for PostgreSQL."""
    if not database_url.startswith("sqlite"):
        return None
    return Path(database_url.split(":///", 1)[1])


def create_engine(database_url: str) -> AsyncEngine:
    if (path := sqlite_path(database_url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(database_url, connect_args={"timeout": 30}, **POOL)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(database_url, pool_pre_ping=True, **POOL)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def open_session(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session for work outside a request (jobs, CLI); commits on success."""
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


async def migrate_async(database_url: str) -> None:
    # Alembic's async env runs its own event loop, so it gets a thread of its own.
    await anyio.to_thread.run_sync(migrate, database_url)
