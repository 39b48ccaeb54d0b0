"""Stopping the background workers stops them: once the notification worker's or the
scheduler's context has exited, none of their tasks is still running, even when they were
stopped in the middle of a database write.

A task left to finish its cancellation on its own outlives the shutdown: it was still
closing its database connection when the event loop closed, and cancelled a second time
there, inside aiosqlite's close, it waited for ever (the test run that hung in CI after
tests/test_notifications.py's background-worker test; a server would hang on stop the same
way). Here the write is held up by a real lock on the test's database, so the moment is
not left to chance.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from models import NotificationDelivery, NotificationEndpoint, Office
from services.connectors.registry import Connectors
from services.connectors.tripletex import TripletexClient, TripletexConnector
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.notifications import new_secret, running_notifications
from services.outbound import outbound
from services.outbound_guard import GuardedClient, OutboundPolicy
from services.settings import Settings, SyncConfig
from services.sync.scheduler import running_sync
from tests.conftest import create_integration, htmx, query

pytestmark = pytest.mark.anyio
HELD = 0.5  # seconds the lock stays held once the stop has begun


def on_statement(engine: AsyncEngine, prefix: str) -> asyncio.Event:
    """Set when `engine` is about to send a statement starting with `prefix`."""
    seen = asyncio.Event()

    def check(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(prefix):
            seen.set()

    event.listen(engine.sync_engine, "before_cursor_execute", check)
    return seen


@asynccontextmanager
async def rows_locked(database_url: str, sql: str) -> AsyncIterator[Callable[[], Any]]:
    """`sql` (an UPDATE) run in a transaction left open, so the rows it touched stay locked
    (the whole database, on SQLite) until the yielded coroutine function releases them."""
    engine = create_engine(database_url)
    connection = await engine.connect()
    await connection.execute(text(sql))

    async def release(after: float = 0.0) -> None:
        await asyncio.sleep(after)
        if connection.in_transaction():
            await connection.rollback()

    try:
        yield release
    finally:
        await release()
        await connection.close()
        await engine.dispose()


async def leftovers(
    before: set[asyncio.Task[Any]], releaser: asyncio.Task[None]
) -> set[asyncio.Task[Any]]:
    """The tasks started since `before` and still running (the releaser aside). They are
    then waited for, so that they end before the engine goes, with no second cancellation."""
    left = {task for task in asyncio.all_tasks() - before if not task.done()} - {releaser}
    await releaser
    if left:
        await asyncio.wait(left, timeout=30)
    return left


def names(tasks: set[asyncio.Task[Any]]) -> list[str]:
    return sorted(task.get_coro().__qualname__ for task in tasks)  # type: ignore[union-attr]


async def test_a_stopped_notification_worker_leaves_no_delivery_running(
    settings: Settings,
) -> None:
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    vault = KeyVault(settings.encryption_keys)
    async with factory() as db:
        db.add(Office(name="Kontor A AS"))
        await db.commit()
        office_id = (await db.exec(select(Office.id))).one()
        endpoint = NotificationEndpoint(
            office_id=office_id,
            url="http://127.0.0.1:9/hook",  # never reached: every claim waits for the lock
            secret_ciphertext=vault.encrypt(new_secret()),
        )
        db.add(endpoint)
        await db.commit()
        # More due deliveries than the worker attempts at once (8): some wait for a slot.
        due = {"endpoint_id": endpoint.id, "event_type": "webhook.test", "payload": "{}"}
        db.add_all(NotificationDelivery(message_id=f"msg_{n}", **due) for n in range(10))
        await db.commit()
    claiming = on_statement(engine, "UPDATE NOTIFICATION_DELIVERY")
    lock = "UPDATE notification_delivery SET attempts = attempts"
    async with (
        rows_locked(settings.database_url, lock) as release,
        GuardedClient(OutboundPolicy.from_settings(settings)) as http,
    ):
        before = asyncio.all_tasks()
        async with running_notifications(factory, vault, http, enabled=True, interval=0.05):
            await asyncio.wait_for(claiming.wait(), 10)  # a delivery's claim waits for the lock
            await asyncio.sleep(0.2)  # and the others have taken their slots
            releaser = asyncio.create_task(release(HELD))  # the stop begins with it held
        left = await leftovers(before, releaser)
    await engine.dispose()
    assert not left, f"still running after the worker stopped: {names(left)}"


async def test_a_stopped_scheduler_leaves_no_tick_running(
    client: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_integration(client)
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    engine = create_engine(settings.database_url)
    claiming = on_statement(engine, "UPDATE CLIENT")
    lock = "UPDATE client SET lease_owner = lease_owner"
    async with rows_locked(settings.database_url, lock) as release, outbound() as out:
        connector = TripletexConnector(
            TripletexClient(
                out.erp,
                base_url=settings.system("tripletex").base_url,
                consumer_token=settings.system("tripletex").consumer_token,
            )
        )
        vault = KeyVault(settings.encryption_keys)
        before = asyncio.all_tasks()
        async with running_sync(
            create_session_factory(engine),
            vault,
            Connectors([connector]),
            SyncConfig(tick_seconds=0.05),
        ):
            await asyncio.wait_for(claiming.wait(), 10)  # a tick's claim waits for the lock
            releaser = asyncio.create_task(release(HELD))  # the stop begins with it held
        left = await leftovers(before, releaser)
    await engine.dispose()
    assert not left, f"still running after the scheduler stopped: {names(left)}"
    # The claim the stop cut short took nothing: no client waits for a lease to run out.
    assert await query(settings, "select count(*) from client where lease_owner is not null") == [
        (0,)
    ]
