"""The in-process scheduler: a frequent tick that syncs due clients, and a nightly job.

One fixed set of jobs per process, not one job per client: which client is due lives in the
database, and leases there keep several processes from syncing the same client.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from services.change_events.subscriptions import SubscriptionManager
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import SessionFactory
from services.metrics import Metrics
from services.settings import SyncConfig
from services.sync import leases
from services.sync.engine import SyncEngine, SyncSettings
from services.sync.nightly import run_nightly
from services.sync.slots import RequestSlots

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulerSettings:
    tick_seconds: float = 5.0
    # Clients synced at once by this process, and as many requests in flight at most
    # (services/sync/slots.py); of either, at most per_integration for one ERP key.
    concurrency: int = 8
    per_integration: int = 4
    lease: timedelta = timedelta(minutes=10)
    nightly_hour: int = 2  # Europe/Oslo


class SyncRunner:
    """Claims due clients and syncs them within the concurrency limits."""

    def __init__(
        self,
        session_factory: SessionFactory,
        engine: SyncEngine,
        settings: SchedulerSettings | None = None,
        subscriptions: SubscriptionManager | None = None,
    ) -> None:
        self._factory = session_factory
        self._engine = engine
        self._subscriptions = subscriptions
        self._wake: asyncio.TimerHandle | None = None
        self._jobs: set[asyncio.Task[Any]] = set()  # ticks and nightly runs under way
        self._stopped = False
        self._tick_lock = asyncio.Lock()
        self.settings = settings or SchedulerSettings()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._running: set[asyncio.Task[None]] = set()
        self.scheduler: AsyncIOScheduler | None = None  # set once started
        self._per_integration: dict[int, asyncio.Semaphore] = {}
        engine.requests = RequestSlots(self.settings.concurrency, self.settings.per_integration)

    @property
    def busy(self) -> int:
        return len(self._running)

    async def tick(self) -> int:
        """Start syncs for due clients up to the free capacity; returns how many started."""
        async with self._tick_lock:  # a woken tick and the interval's must not both fill slots
            return await self._start_due()

    async def _start_due(self) -> int:
        free = self.settings.concurrency - len(self._running)
        if free <= 0 or self._stopped:
            return 0
        async with self._factory() as db:
            claimed = await leases.claim_due(
                db, self.owner, self.settings.lease, limit=free, systems=self._engine.systems
            )
        for client_id, integration_id in claimed:
            # A sync releases its lease in its last commit, so the next one of that client
            # may start while the previous task is still finishing: tasks, not clients.
            task = asyncio.create_task(self._sync(client_id, integration_id))
            self._running.add(task)
            task.add_done_callback(self._finished)
        return len(claimed)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        # A slot is free: start the next due client now, not at the next interval.
        if self.scheduler is not None and not self._stopped:
            self.wake(0.0)

    def wake(self, delay: float = 0.25) -> None:
        """Tick soon (a callback noted work) rather than at the next interval. The short
        delay lets a burst of callbacks for one client become one sync."""
        if self._wake is None and not self._stopped:
            self._wake = asyncio.get_running_loop().call_later(delay, self._woken)

    def _woken(self) -> None:
        self._wake = None
        task = asyncio.get_running_loop().create_task(self.tick())
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def run_job(self, job: Callable[[], Awaitable[object]]) -> None:
        """A scheduled job (tick, nightly), run so that stop() waits for it: APScheduler's
        shutdown cancels a running job and returns at once."""
        task = asyncio.current_task()
        assert task is not None
        self._jobs.add(task)
        try:
            await job()
        finally:
            self._jobs.discard(task)

    async def drain(self) -> None:
        """Wait for the syncs started so far (tests)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    async def stop(self) -> None:
        """Shutdown: stop the syncs and jobs under way, and return once they have ended. What
        they committed stays; their leases are released (or expire), and the next tick
        anywhere redoes the rest.

        A job left to finish its cancellation on its own outlived the shutdown: it could
        still be closing a database connection when the event loop closed, and cancelled a
        second time there, inside aiosqlite's close, it hung the process for good."""
        self._stopped = True
        if self._wake is not None:
            self._wake.cancel()
        tasks = [*self._running, *self._jobs]
        for task in tasks:
            if not task.cancelling():  # once only: APScheduler has cancelled its jobs already
                task.cancel()
        if tasks:
            # Not gather(): if we are cancelled meanwhile, it would cancel them all again.
            await asyncio.wait(tasks)

    async def _sync(self, client_id: int, integration_id: int) -> None:
        gate = self._per_integration.setdefault(
            integration_id, asyncio.Semaphore(self.settings.per_integration)
        )
        result = "crashed"
        try:
            async with gate:
                if self._subscriptions is not None:
                    await self._subscriptions.reconcile(client_id)
                result = await self._engine.sync_client(client_id, lease_owner=self.owner)
        except Exception:
            log.exception("sync crashed client=%s", client_id)
        finally:
            if result != "ok":  # a successful sync released it with its result
                async with self._factory() as db:
                    await leases.release(db, client_id, self.owner)


@asynccontextmanager
async def running_sync(
    session_factory: SessionFactory,
    vault: KeyVault,
    connectors: Connectors,
    config: SyncConfig,
    metrics: Metrics | None = None,
    public_base_url: str | None = None,
) -> AsyncIterator[SyncRunner | None]:
    """The sync engine and its scheduler for the lifetime of the app (unless disabled)."""
    if not config.enabled:
        yield None
        return
    engine = SyncEngine(
        session_factory,
        vault,
        connectors,
        SyncSettings(years=config.years, poll_interval=timedelta(minutes=config.poll_minutes)),
        metrics=metrics,
    )
    runner = SyncRunner(
        session_factory,
        engine,
        SchedulerSettings(
            tick_seconds=config.tick_seconds,
            concurrency=config.concurrency,
            per_integration=config.per_key,
        ),
        SubscriptionManager(session_factory, vault, connectors, public_base_url),
    )

    async def nightly() -> None:
        await run_nightly(
            session_factory, vault, connectors, today=date.today(), years=config.years
        )

    scheduler = start_scheduler(runner, nightly)
    runner.scheduler = scheduler
    try:
        yield runner
    finally:
        scheduler.shutdown(wait=False)
        await runner.stop()


def start_scheduler(runner: SyncRunner, nightly: Callable[[], Awaitable[None]]) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="Europe/Oslo")
    scheduler.add_job(
        runner.run_job,
        "interval",
        args=[runner.tick],
        seconds=runner.settings.tick_seconds,
        id="sync-tick",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        runner.run_job,
        CronTrigger(hour=runner.settings.nightly_hour, minute=30, timezone="Europe/Oslo"),
        args=[nightly],
        id="nightly",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
