"""An id once handed out (API, notifications, page addresses) never names another row."""

import anyio
import pytest
from alembic import command
from litestar.testing import AsyncTestClient
from sqlalchemy import Connection, Integer, inspect, text

from services.crypto import KeyVault
from services.db import alembic_config, create_engine, create_session_factory, migrate_async
from services.notifications import NotificationWorker
from services.outbound_guard import GuardedClient, OutboundPolicy
from services.settings import Settings
from tests import databases
from tests.api_support import create_token, no_settle_delay
from tests.conftest import Simulator, create_integration, csrf, free_port, htmx, query
from tests.sync_support import sync_engine

pytestmark = pytest.mark.anyio

__all__ = ["no_settle_delay"]  # autouse: changes become notifications at once

# The tables whose ids leave the app: pages' addresses, the API (clients, cursors of changes
# and accounts), notifications (client ids, the leveranselogg's deliveries), token revocation.
HANDED_OUT = (
    "integration",
    "client",
    "account",
    "data_change",
    "sync_run",
    "api_token",
    "notification_endpoint",
    "notification_delivery",
    "notification_attempt",
)


async def ids(settings: Settings) -> dict[str, set[int]]:
    return {t: {row[0] for row in await query(settings, f"select id from {t}")} for t in HANDED_OUT}


async def hand_out_ids(client: AsyncTestClient, settings: Settings, simulator: Simulator) -> None:
    """A row in every table of HANDED_OUT, each made the way the app makes it."""
    await client.get("/innstillinger/varsler")
    # Nothing listens there: the test delivery fails, and its attempt is logged all the same.
    url = f"http://127.0.0.1:{free_port()}/hook"
    saved = await client.post(
        "/innstillinger/varsler", data={"url": url, "enabled": "on", "_csrf_token": csrf(client)}
    )
    assert saved.status_code == 200, saved.text
    await client.post("/innstillinger/varsler/test", headers=htmx(client))
    await create_token(client)
    integration_id = await create_integration(client)
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    ((client_id,),) = await query(
        settings, f"select min(id) from client where integration_id = {integration_id}"
    )
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "ok"


async def test_ids_of_deleted_rows_are_never_given_out_again(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    await hand_out_ids(client, settings, simulator)
    before = await ids(settings)
    assert all(before.values()), before
    ((integration_id,),) = await query(settings, "select id from integration")
    deleted = await client.post(f"/integrasjoner/{integration_id}/slett", headers=htmx(client))
    assert deleted.status_code == 200
    deleted = await client.post("/innstillinger/varsler/slett", headers=htmx(client))
    assert deleted.status_code == 200
    # No page deletes a token (revoking keeps the row); an operator's clean-up might.
    await execute(settings, "delete from api_token")
    assert not any((await ids(settings)).values())

    await hand_out_ids(client, settings, simulator)
    after = await ids(settings)
    assert all(after.values()), after
    # Not merely unequal: above every earlier id, as cursors over them (changes, accounts) need.
    given_again = {
        table: sorted(after[table] & before[table])
        for table in HANDED_OUT
        if min(after[table]) <= max(before[table])
    }
    assert given_again == {}


async def test_every_table_with_an_integer_id_never_reuses_one(migrated_database: str) -> None:
    """The schema itself, so that a table added by a later migration cannot forget it."""
    engine = create_engine(migrated_database)
    async with engine.connect() as connection:
        tables = await connection.run_sync(integer_id_tables)
    await engine.dispose()
    assert set(HANDED_OUT) <= set(tables)
    assert [name for name, never_reused in tables.items() if not never_reused] == []


def integer_id_tables(connection: Connection) -> dict[str, bool]:
    """Each table whose primary key is one integer `id`: whether the database never hands
    one of its ids out twice. SQLite: only if AUTOINCREMENT (a plain INTEGER PRIMARY KEY
    gives the highest id again after it is deleted). PostgreSQL: a sequence or identity."""
    inspector = inspect(connection)
    sql = (
        dict(connection.exec_driver_sql("select name, sql from sqlite_master").all())
        if (connection.dialect.name == "sqlite")
        else {}
    )
    tables = {}
    for name in inspector.get_table_names():
        if inspector.get_pk_constraint(name)["constrained_columns"] != ["id"]:
            continue
        column = next(c for c in inspector.get_columns(name) if c["name"] == "id")
        if not isinstance(column["type"], Integer):
            continue
        if connection.dialect.name == "sqlite":
            tables[name] = "AUTOINCREMENT" in sql[name].upper()
        else:
            tables[name] = "identity" in column or str(column["default"]).startswith("nextval(")
    return tables


async def execute(settings: Settings, sql: str) -> None:
    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(text(sql))
    await engine.dispose()


async def test_upgrade_keeps_every_row_and_skips_ids_notifications_named(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    """A database from before 0006, with the clients notifications named already deleted:
    the upgrade rebuilds every table without losing a row, and the deleted clients' ids
    (and the change ids an endpoint has passed) are not handed out again."""
    if databases.ON_POSTGRES:
        pytest.skip("0006 changes nothing on PostgreSQL")
    await hand_out_ids(client, settings, simulator)
    engine = create_engine(settings.database_url)
    async with GuardedClient(OutboundPolicy.from_settings(settings)) as http:
        worker = NotificationWorker(
            create_session_factory(engine), KeyVault(settings.encryption_keys), http
        )
        assert await worker.dispatch() > 0  # client.activated and balances.updated events
    await engine.dispose()
    ((integration_id,),) = await query(settings, "select id from integration")
    await client.post(f"/integrasjoner/{integration_id}/slett", headers=htmx(client))
    await anyio.to_thread.run_sync(downgrade, settings.database_url, "0005")
    ((notified_client,),) = await query(
        settings, "select max(client_id) from notification_delivery"
    )
    ((passed_change,),) = await query(settings, "select last_change_id from notification_endpoint")
    ((last_change,),) = await query(settings, "select coalesce(max(id), 0) from data_change")
    assert notified_client and passed_change > last_change  # the changes went with the clients
    before = await every_row(settings)
    assert all(before[t] for t in ("office", "user_account", "api_token", "notification_attempt"))

    await migrate_async(settings.database_url)
    after = await every_row(settings)
    # Later migrations append columns (roles, tokens' rights): the rows' earlier columns stay.
    kept = {name: [row[: len(rows[0])] for row in after[name]] if rows else after[name]
            for name, rows in before.items()}  # fmt: skip
    assert kept == before
    assert all(after[name] == [] for name in after.keys() - before.keys())  # tables since 0005
    integration_id = await create_integration(client)
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    ((first_client, first_change),) = await query(
        settings, "select min(c.id), min(d.id) from client c, data_change d"
    )
    assert first_client > notified_client
    assert first_change > passed_change


async def every_row(settings: Settings) -> dict[str, list[tuple]]:
    names = await query(
        settings,
        "select name from sqlite_master where type = 'table' "
        "and name not like 'sqlite_%' and name != 'alembic_version'",
    )
    return {name: sorted(await query(settings, f'select * from "{name}"')) for (name,) in names}


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)
