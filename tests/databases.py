"""Test databases on either backend.

SQLite (default): one migrated template file per run, copied for each test.
PostgreSQL (TEST_DATABASE_URL=postgresql://user@host:port/db, an existing database we may
connect to): a database of our own per run, migrated once and truncated before each test.
"""

from __future__ import annotations

import os
import uuid

import asyncpg
from sqlmodel import SQLModel

import models  # noqa: F401  (every table on the metadata)

ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "")
ON_POSTGRES = ADMIN_URL.startswith("postgres")


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def create_postgres_database(label: str) -> str:
    """A new empty database; returns its SQLAlchemy (asyncpg) URL."""
    name = f"erp_{label}_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return _with_database(ADMIN_URL, name).replace("postgresql://", "postgresql+asyncpg://", 1)


async def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def truncate_all(url: str) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()
