"""Helpers for sync tests: an engine wired to the test's app settings and simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal

from services.balances import trial_balance
from services.connectors.base import Connector
from services.connectors.registry import Connectors
from services.connectors.tripletex import TripletexClient, TripletexConnector
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.outbound import outbound
from services.settings import Settings
from services.sync.engine import SyncEngine, SyncSettings
from tests.conftest import Simulator


@asynccontextmanager
async def sync_engine(
    settings: Settings,
    simulator: Simulator,
    *,
    http_timeout: float = 5.0,
    wrap: Callable[[Connector], Connector] = lambda connector: connector,
    **tripletex: object,
) -> AsyncIterator[SyncEngine]:
    """`wrap`: something between the engine and the real connector (a test's observer)."""
    engine = create_engine(settings.database_url)
    async with outbound(http_timeout) as out:
        client = TripletexClient(
            out.erp,
            base_url=settings.system("tripletex").base_url,
            consumer_token=settings.system("tripletex").consumer_token,
            **tripletex,  # type: ignore[arg-type]
        )
        yield SyncEngine(
            create_session_factory(engine),
            KeyVault(settings.encryption_keys),
            Connectors([wrap(TripletexConnector(client))]),
            SyncSettings(years=2),
            today=lambda: simulator.state.today,
        )
    await engine.dispose()


async def stored_month(
    engine: SyncEngine, client_id: int, year: int, month: int
) -> dict[int, tuple[Decimal, Decimal]]:
    async with engine.session_factory() as db:
        lines = await trial_balance(db, client_id, year, month, month)
    return {
        line.account_number: (line.opening, line.movement)
        for line in lines
        if line.opening or line.movement
    }


def simulator_month(
    simulator: Simulator, company_id: int, year: int, month: int
) -> dict[int, tuple[Decimal, Decimal]]:
    start = date(year, month, 1)
    end = date(year + month // 12, month % 12 + 1, 1)
    return {
        row.account.number: (row.balance_in, row.balance_change)
        for row in simulator.state.balance_sheet(company_id, start, end)
        if row.balance_in or row.balance_change
    }
