"""The app's shared services, built once at start-up, and the request dependencies that hand
them to handlers (Litestar's dependency injection is the only way in)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from services.auth import CurrentUser
from services.change_events.callbacks import CallbackInbox
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import SessionFactory
from services.metrics import Metrics
from services.outbound_guard import GuardedClient
from services.saft.uploads import ImportRunner
from services.settings import Settings
from services.sync.scheduler import SyncRunner
from web.guards import LoginRequired, current_user

__all__ = ["LoginRequired"]  # where the app's handlers import it from


@dataclass(frozen=True)
class Services:
    """Every shared service of a running app; the lifespan builds it whole, once."""

    settings: Settings
    session_factory: SessionFactory
    vault: KeyVault
    metrics: Metrics  # one registry per app instance
    http: httpx.AsyncClient  # operator-configured URLs only (the demo's simulator)
    guarded: GuardedClient  # every URL a user gave us
    connectors: Connectors  # by system
    callback_inbox: CallbackInbox
    sync_runner: SyncRunner | None  # None: the scheduler is off here (SYNC_ENABLED=false)
    saft_imports: ImportRunner  # the SAF-T imports running in this process


def provide_services(state: State) -> Services:
    services: Services = state.services
    return services


async def provide_db(services: NamedDependency[Services]) -> AsyncIterator[AsyncSession]:
    async with services.session_factory() as session:
        yield session


async def provide_user(request: HTMXRequest, db: NamedDependency[AsyncSession]) -> CurrentUser:
    return await current_user(request, db)


def provide_vault(services: NamedDependency[Services]) -> KeyVault:
    return services.vault


def provide_connectors(services: NamedDependency[Services]) -> Connectors:
    return services.connectors


def provide_http(services: NamedDependency[Services]) -> httpx.AsyncClient:
    return services.http


def provide_guarded(services: NamedDependency[Services]) -> GuardedClient:
    return services.guarded


def provide_settings(services: NamedDependency[Services]) -> Settings:
    return services.settings


def provide_metrics(services: NamedDependency[Services]) -> Metrics:
    return services.metrics


def provide_saft_imports(services: NamedDependency[Services]) -> ImportRunner:
    return services.saft_imports


DEPENDENCIES = {
    "services": Provide(provide_services, sync_to_thread=False),
    "db": Provide(provide_db),
    "user": Provide(provide_user),
    "vault": Provide(provide_vault, sync_to_thread=False),
    "connectors": Provide(provide_connectors, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "http": Provide(provide_http, sync_to_thread=False),
    "guarded": Provide(provide_guarded, sync_to_thread=False),
    "metrics": Provide(provide_metrics, sync_to_thread=False),
    "saft_imports": Provide(provide_saft_imports, sync_to_thread=False),
}


def wants_fragment(request: HTMXRequest) -> bool:
    """An htmx swap wants a fragment; a boosted link or a history restore (back button after
    htmx's history cache missed) wants the whole page."""
    details = request.htmx
    return bool(details) and not details.boosted and not details.history_restore_request
