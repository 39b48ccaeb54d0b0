"""The receiver's copy of our webhook subscriptions: one query for a burst of callbacks of
many clients, new subscriptions known at once, removed ones refused within the cache age."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, delete

from models import WebhookSubscription
from services.change_events.hook_cache import HookCache
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.settings import Settings
from tests.conftest import create_integration, query

pytestmark = pytest.mark.anyio


@dataclass
class Bed:
    engine: AsyncEngine
    vault: KeyVault
    reads: list[str]  # the statements that read webhook_subscription

    def cache(self, max_age: float = 60.0) -> HookCache:
        return HookCache(create_session_factory(self.engine), self.vault, max_age=max_age)

    async def subscribe(self, client_id: int, event: str) -> tuple[str, str]:
        """A subscription as the subscription manager stores it: (hook id, secret)."""
        hook_id, secret = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        async with create_session_factory(self.engine)() as db:
            db.add(
                WebhookSubscription(
                    client_id=client_id,
                    event=event,
                    hook_id=hook_id,
                    secret_ciphertext=self.vault.encrypt(secret),
                )
            )
            await db.commit()
        return hook_id, secret

    async def unsubscribe(self, hook_id: str) -> None:
        async with create_session_factory(self.engine)() as db:
            await db.exec(
                delete(WebhookSubscription).where(col(WebhookSubscription.hook_id) == hook_id)
            )
            await db.commit()


@pytest.fixture
async def bed(client: AsyncTestClient, settings: Settings) -> AsyncIterator[Bed]:
    await create_integration(client)
    engine = create_engine(settings.database_url)
    reads: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args: object) -> None:  # type: ignore[no-untyped-def]
        if "FROM webhook_subscription" in statement:
            reads.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    yield Bed(engine, KeyVault(settings.encryption_keys), reads)
    await engine.dispose()


async def test_a_burst_of_callbacks_of_many_clients_reads_the_subscriptions_once(
    bed: Bed, settings: Settings
) -> None:
    client_ids = [row[0] for row in await query(settings, "select id from client order by id")]
    assert len(client_ids) >= 5
    hooks = {}
    for client_id in client_ids:
        for name in ("voucher.create", "account.update"):
            hook_id, secret = await bed.subscribe(client_id, name)
            hooks[hook_id] = (client_id, name, secret)
    cache = bed.cache()

    found = await asyncio.gather(*(cache.get(hook_id) for hook_id in hooks))

    assert [(h.client_id, h.event, h.secret) for h in found if h] == list(hooks.values())
    assert len(bed.reads) == 1
    await asyncio.gather(*(cache.get(hook_id) for hook_id in hooks))
    assert len(bed.reads) == 1  # and none again while the copy is fresh


async def test_a_new_subscription_is_known_at_once_and_a_removed_one_refused_within_the_age(
    bed: Bed, settings: Settings
) -> None:
    first, second = [row[0] for row in await query(settings, "select id from client limit 2")]
    kept, _ = await bed.subscribe(first, "voucher.create")
    cache = bed.cache(max_age=0.3)
    assert await cache.get(kept) is not None

    # A client switched on after the copy was read: its first callback looks it up alone.
    added, secret = await bed.subscribe(second, "voucher.create")
    hook = await cache.get(added)
    assert hook is not None and (hook.client_id, hook.secret) == (second, secret)
    assert await cache.get("no-such-hook") is None

    await bed.unsubscribe(kept)
    await asyncio.sleep(0.35)  # the copy is now older than its age: read again whole
    assert await cache.get(kept) is None
    assert await cache.get(added) is not None
