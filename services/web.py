"""Request-scoped dependencies and the app-wide objects they hand out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth import CurrentUser, load_current_user
from services.change_events.callbacks import CallbackInbox
from services.connectors.base import Connector
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import SessionFactory
from services.metrics import Metrics
from services.outbound_guard import GuardedClient
from services.settings import Settings
from services.sync.scheduler import SyncRunner


class LoginRequired(Exception):
    """Raised by the user dependency; the app answers with a redirect to the login page."""


@dataclass
class AppContext:
    settings: Settings
    session_factory: SessionFactory
    vault: KeyVault
    http: httpx.AsyncClient | None = None  # operator-configured URLs only (the demo's simulator)
    guarded: GuardedClient | None = None  # every URL a user gave us
    connectors: Connectors | None = None  # by system
    metrics: Metrics = field(default_factory=Metrics)  # one registry per app instance
    sync_runner: SyncRunner | None = None
    callback_inbox: CallbackInbox | None = None

    def system_of(self, system: str) -> Connector:
        assert self.connectors is not None, "the connectors are created at start-up"
        return self.connectors[system]


def context(state: State) -> AppContext:
    return state.ctx


async def provide_db(state: State) -> AsyncIterator[AsyncSession]:
    async with context(state).session_factory() as session:
        yield session


async def provide_user(request: HTMXRequest, db: NamedDependency[AsyncSession]) -> CurrentUser:
    user_id = request.session.get("user_id") if request.session else None
    user = await load_current_user(db, user_id) if isinstance(user_id, int) else None
    if user is None:
        raise LoginRequired
    return user


def provide_vault(state: State) -> KeyVault:
    return context(state).vault


def provide_connectors(state: State) -> Connectors:
    connectors = context(state).connectors
    assert connectors is not None, "the connectors are created at start-up"
    return connectors


def provide_http(state: State) -> httpx.AsyncClient:
    http = context(state).http
    assert http is not None, "the HTTP client is created at start-up"
    return http


def provide_settings(state: State) -> Settings:
    return context(state).settings


def wants_fragment(request: HTMXRequest) -> bool:
    """An htmx swap wants a fragment; a boosted link or a history restore (back button after
    htmx's history cache missed) wants the whole page."""
    details = request.htmx
    return bool(details) and not details.boosted and not details.history_restore_request
