"""Our change subscriptions at the systems, kept in memory for the callback receiver.

Every callback names its subscription, whose secret checks the signature. Looking that up
per client cost a query and a decryption per hook, and after a restart, or whenever the
cache ran out, a burst of callbacks for many clients paid them all at once: the 99th
percentile of a burst's first half-second was 32-67 ms, and 13-28 ms after it (README,
Performance). Now every subscription is read in one query, and read again whole once that
copy is HOOK_CACHE_SECONDS old, so a removed subscription is refused at most that much
later. A subscription made since (a client switched on, another process) is looked up
alone on its first callback. Secrets are decrypted on first use and kept while their
ciphertext is unchanged.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import bindparam
from sqlmodel import select

from models import Client, Integration, WebhookSubscription
from services.crypto import KeyVault
from services.db import SessionFactory

HOOK_CACHE_SECONDS = 60.0
HOOKS = WebhookSubscription.__table__  # type: ignore[attr-defined]
CLIENTS = Client.__table__  # type: ignore[attr-defined]
INTEGRATIONS = Integration.__table__  # type: ignore[attr-defined]
_COLUMNS = (
    HOOKS.c.hook_id, INTEGRATIONS.c.system, HOOKS.c.client_id, HOOKS.c.event,
    HOOKS.c.erp_subscription_id, HOOKS.c.secret_ciphertext,
)  # fmt: skip
# The system, so that a hook answers only under its own system's path.
ALL_HOOKS = (
    select(*_COLUMNS)
    .join(CLIENTS, CLIENTS.c.id == HOOKS.c.client_id)
    .join(INTEGRATIONS, INTEGRATIONS.c.id == CLIENTS.c.integration_id)
)
ONE_HOOK = ALL_HOOKS.where(HOOKS.c.hook_id == bindparam("hook_id"))


@dataclass(frozen=True)
class Hook:
    system: str
    client_id: int
    event: str
    erp_subscription_id: int | None
    secret: str


@dataclass(frozen=True)
class _Stored:
    system: str
    client_id: int
    event: str
    erp_subscription_id: int | None
    secret_ciphertext: str


class HookCache:
    def __init__(
        self,
        session_factory: SessionFactory,
        vault: KeyVault,
        *,
        max_age: float = HOOK_CACHE_SECONDS,
    ) -> None:
        self._factory = session_factory
        self._vault = vault
        self._max_age = max_age
        self._stored: dict[str, _Stored] = {}
        self._secrets: dict[str, str] = {}  # ciphertext -> secret
        self._expires = 0.0  # monotonic
        self._loading: asyncio.Task[None] | None = None

    async def get(self, hook_id: str) -> Hook | None:
        """The subscription, or None if we have none by that id."""
        if time.monotonic() >= self._expires:
            await self._load_all()
        stored = self._stored.get(hook_id)
        if stored is None:
            stored = await self._load_one(hook_id)
            if stored is None:
                return None
        return Hook(
            stored.system,
            stored.client_id,
            stored.event,
            stored.erp_subscription_id,
            self._secret(stored),
        )

    async def _load_all(self) -> None:
        # One load for every callback that finds the copy stale; shielded, because one
        # caller giving up (a client hanging up) must not cancel it for the others.
        if self._loading is None or self._loading.done():
            self._loading = asyncio.create_task(self._read_all())
        await asyncio.shield(self._loading)

    async def _read_all(self) -> None:
        started = time.monotonic()
        async with self._factory() as db:
            rows = (await db.exec(ALL_HOOKS)).all()  # type: ignore[call-overload]
        self._stored = {hook_id: _Stored(*rest) for hook_id, *rest in rows}
        current = {stored.secret_ciphertext for stored in self._stored.values()}
        self._secrets = {c: s for c, s in self._secrets.items() if c in current}
        self._expires = started + self._max_age

    async def _load_one(self, hook_id: str) -> _Stored | None:
        async with self._factory() as db:
            row = (await db.exec(ONE_HOOK, params={"hook_id": hook_id})).first()  # type: ignore[call-overload]
        if row is None:
            return None
        stored = self._stored[hook_id] = _Stored(*row[1:])
        return stored

    def _secret(self, stored: _Stored) -> str:
        secret = self._secrets.get(stored.secret_ciphertext)
        if secret is None:
            secret = self._secrets[stored.secret_ciphertext] = self._vault.decrypt(
                stored.secret_ciphertext
            )
        return secret
