"""Syncing one client: fetch from the ERP, store, record the run.

A full sync fetches the chart of accounts and every month of the window; an incremental
sync fetches the accounts and only the months known (or suspected) to have changed. Data
is committed in whole months (a few per transaction), so a sync that dies half-way leaves
every month either as it was or as it is now — never half a month — and the next sync
completes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Boolean, bindparam, case, insert, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration, LiveMode, SyncRun
from models.base import utcnow
from services import clients, publishing
from services import integrations as integration_service
from services.connectors.base import (
    AccessDenied,
    Balances,
    CompanyRef,
    Connector,
    ErpError,
    KeyRejected,
    RateLimited,
    RemoteAccount,
    ReportsChangedMonths,
    RequestStats,
    request_stats,
)
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import SessionFactory
from services.metrics import Metrics
from services.sync import pending, periods, store
from services.sync.periods import Month
from services.sync.slots import RequestSlots
from services.sync.status import (
    KEY_INVALID,
    SHOW_AFTER_FAILURES,
    SyncStatus,
    client_key_invalid,
    rate_limited,
    unavailable,
)

log = logging.getLogger(__name__)
INTERRUPTED = "interrupted: the process stopped before the sync finished"
# Months stored per transaction: whole months always, and a year's worth at a time because
# each transaction costs more of our CPU than the fetches cost Tripletex (bench/README.md).
# The progress bar moves a step per transaction.
MONTHS_PER_COMMIT = 12
# Progress and results are written to the tables: no session holds these rows meanwhile.
# These statements run for every sync: built once (building one costs more of our CPU than
# running it), with parameters.
CLIENTS = Client.__table__  # type: ignore[attr-defined]
RUNS = SyncRun.__table__  # type: ignore[attr-defined]
_MOMENT = CLIENTS.c.synced_at.type
INTERRUPTED_RUNS = (
    update(RUNS)
    .where(RUNS.c.client_id == bindparam("of_client"), RUNS.c.result == "running")
    .values(result="failed", finished_at=bindparam("now", type_=_MOMENT), error=INTERRUPTED)
)
RUN_STARTED = insert(RUNS).returning(RUNS.c.id)
STARTED = (
    update(CLIENTS)
    .where(CLIENTS.c.id == bindparam("client_id"))
    .values(sync_status=SyncStatus.SYNCING, progress_done=0, progress_total=bindparam("total"))
)
_LEASE_OURS = CLIENTS.c.lease_owner == bindparam("owner", type_=CLIENTS.c.lease_owner.type)
PROGRESS = (
    update(CLIENTS)
    .where(CLIENTS.c.id == bindparam("client_id"))
    .values(
        progress_done=CLIENTS.c.progress_done + bindparam("steps"),
        # Still alive: the lease (if one is held) is renewed.
        lease_expires_at=case(
            (CLIENTS.c.lease_owner.is_(None), None), else_=bindparam("expires_at", type_=_MOMENT)
        ),
    )
)
SUCCEEDED = (
    update(CLIENTS)
    .where(CLIENTS.c.id == bindparam("client_id"))
    .values(
        sync_status=SyncStatus.OK,
        sync_error=None,
        sync_failures=0,
        synced_at=bindparam("now", type_=_MOMENT),
        progress_done=CLIENTS.c.progress_total,
        # With webhooks, a scheduled re-check is only a safety net.
        sync_due_at=case(
            (CLIENTS.c.live_mode == LiveMode.WEBHOOKS, bindparam("live_recheck", type_=_MOMENT)),
            else_=bindparam("poll", type_=_MOMENT),
        ),
        # FULL SYNKRONISERING is a one-shot switch: a full sync clears it.
        full_sync=case((bindparam("full", type_=Boolean), False), else_=CLIENTS.c.full_sync),
        # The scheduler's lease is released with the result, if it is still ours.
        lease_owner=case((_LEASE_OURS, None), else_=CLIENTS.c.lease_owner),
        lease_expires_at=case((_LEASE_OURS, None), else_=CLIENTS.c.lease_expires_at),
    )
)
RUN_SUCCEEDED = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("run_id"))
    .values(
        result="ok",
        finished_at=bindparam("now", type_=_MOMENT),
        requests=bindparam("request_count"),
        retries=bindparam("retry_count"),
        periods=bindparam("period_count"),
    )
)


@dataclass(frozen=True)
class SyncSettings:
    years: int = 2  # accounting years kept: the current and the previous
    poll_months: int = 2  # months an incremental poll re-checks
    poll_interval: timedelta = timedelta(minutes=10)
    live_recheck: timedelta = timedelta(hours=6)  # with webhooks on: the safety-net poll
    retry_after: timedelta = timedelta(minutes=2)  # first retry after a failed sync
    no_access_retry: timedelta = timedelta(hours=6)
    lease: timedelta = timedelta(minutes=10)  # renewed on every month stored


class SyncEngine:
    def __init__(
        self,
        session_factory: SessionFactory,
        vault: KeyVault,
        connectors: Connectors,
        settings: SyncSettings | None = None,
        *,
        today: Callable[[], date] = date.today,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics
        self.session_factory = session_factory
        self._vault = vault
        self._connectors = connectors
        self.systems = tuple(connectors)  # the systems whose clients this engine syncs
        self.settings = settings or SyncSettings()
        self._today = today
        # The scheduler sets its own limits (SyncRunner); this is for syncs started directly.
        self.requests = RequestSlots(total=8, per_key=4)

    async def sync_client(
        self,
        client_id: int,
        *,
        trigger: str | None = None,
        full: bool | None = None,
        lease_owner: str | None = None,
    ) -> str:
        """Sync one client now; returns the run's result ("ok", "failed", or "skipped").

        `full` None decides by itself: full when asked for (FULL SYNKRONISERING) or when the
        client was never synced; otherwise the months noted as changed (webhooks, the nightly
        reconcile) plus, when polling or due by schedule, the most recent months.
        `trigger` None (the scheduler): named from why the client is due, and an inactive
        client is skipped. `lease_owner`: the holder of the client's lease (the scheduler),
        released in the same transaction as a successful result.
        """
        async with self.session_factory() as db:
            row = await clients.with_integration(db, client_id)
            if row is None or (trigger is None and not row[0].active):
                return "skipped"
            client, integration = row
            connector = self._connectors.get(integration.system)
            if connector is None:  # a system this process is not configured for
                log.warning("no connector for client=%s system=%s", client_id, integration.system)
                return "skipped"
            now = utcnow()  # the run's start: before it reads the notes it will answer
            notes = await self._pending(db, client_id)
            months = set(notes)
            if full is None:
                full = client.full_sync or client.synced_at is None
            due_by_time = client.sync_due_at is None or client.sync_due_at <= now
            polling = client.live_mode != LiveMode.WEBHOOKS or due_by_time
            if not full and polling:
                # Polling: the recent months are re-checked; unchanged ones cost a 304.
                months |= set(periods.recent(self._today(), self.settings.poll_months))
            trigger = trigger or _trigger(client, full, notes, polling)
            window = periods.window(self._today(), self.settings.years)
            todo = window if full else sorted(m for m in months if m in window)
            if client.sync_status == SyncStatus.SYNCING:
                # A run still "running" belonged to a process that died mid-way (only a
                # run in progress leaves the client in this status).
                await db.exec(  # type: ignore[call-overload]
                    INTERRUPTED_RUNS, params={"of_client": client_id, "now": utcnow()}
                )
            run = {
                "client_id": client_id,
                "kind": "full" if full else "incremental",
                "trigger": trigger,
                "started_at": now,
            }
            run_id = (await db.exec(RUN_STARTED, params=run)).scalar_one()  # type: ignore[call-overload]
            await db.exec(STARTED, params={"client_id": client_id, "total": len(todo) + 1})  # type: ignore[call-overload]
            await db.commit()
            job = _Job(
                connector=connector,
                client_id=client_id,
                integration_id=client.integration_id,
                run_id=run_id,
                key=integration_service.key_of(self._vault, integration, client),
                company=CompanyRef.of(client.erp_id, integration.key_kind),
                mirror_deletions=client.delete_accounts,
                full=full,
                lease_owner=lease_owner,
                ask_changes=polling and not full,
                window=tuple(window),
            )

        stats = RequestStats()
        token = request_stats.set(stats)
        started = time.monotonic()
        try:
            await self._fetch_and_store(job, todo, stats)
        except ErpError as exc:
            await self._failed(job, exc, stats)
            connector.forget_cache(job.company)
            self._count(connector.system, "failed")
            return "failed"
        finally:
            request_stats.reset(token)
        self._count(connector.system, "ok")
        log.info(
            "synced client=%s kind=%s months=%d requests=%d retries=%d seconds=%.2f",
            client_id, "full" if full else "incremental", len(todo), stats.requests,
            stats.retries, time.monotonic() - started,
        )  # fmt: skip
        return "ok"

    async def _fetch_and_store(self, job: _Job, months: list[Month], stats: RequestStats) -> None:
        """Fetch and store in batches of months; the last batch's transaction also records
        the result, so a sync ends in one commit."""
        if job.ask_changes and isinstance(job.connector, ReportsChangedMonths):
            # A system without webhooks that can say which months changed: those are
            # fetched too, however old, rather than waiting for the nightly reconcile. They
            # are noted first, so a run that fails later leaves them for the next one.
            async with self.requests.slot(job.integration_id):
                changed = await job.connector.changed_months(job.key, job.company)
            extra = {Month(year, month) for year, month in changed} & set(job.window)
            if extra:
                months = sorted(set(months) | extra)
                async with self.session_factory() as db:
                    await pending.note_months(db, job.client_id, extra, source="poll")
                    await db.exec(
                        STARTED, params={"client_id": job.client_id, "total": len(months) + 1}
                    )  # type: ignore[call-overload]
                    await db.commit()
        started = utcnow()  # every fetch below answers the notes older than this
        # A change in an earlier year moves every later year's opening balance: fetched
        # with the last batch, unless that year's January is synced anyway.
        openings = sorted(
            set() if job.full else _later_years(months, self._today()) - _januaries(months)
        )

        async def fetch_chart() -> list[RemoteAccount] | None:  # None: unchanged (304)
            # With SLETT KONTOER on, accounts flagged removed before it was switched on must
            # go even when the chart is unchanged: those clients always get the whole chart.
            async with self.requests.slot(job.integration_id):
                return await job.connector.fetch_accounts(
                    job.key, job.company, conditional=not job.full and not job.mirror_deletions
                )

        async def fetch(month: Month, conditional: bool) -> Balances:
            async with self.requests.slot(job.integration_id):
                return await job.connector.fetch_balances(
                    job.key, job.company, month.start, month.end, conditional=conditional
                )

        # The chart of accounts comes with the first batch, fetched and stored alongside it.
        batches = _batches(months, MONTHS_PER_COMMIT) or [[]]
        for number, batch in enumerate(batches, 1):
            first, last = number == 1, number == len(batches)
            requests: list[Coroutine[Any, Any, Any]] = [fetch(m, not job.full) for m in batch]
            if last:
                requests += [fetch(Month(year, 1), False) for year in openings]
            if first:
                requests.append(fetch_chart())
            answers = await _all(requests)
            accounts = answers.pop() if first else None
            answered, opened = answers[: len(batch)], answers[len(batch) :]
            fetched = store.Batch(accounts)
            for month, balances in zip(batch, answered, strict=True):
                if not balances.unchanged:
                    fetched.months[month] = balances.movement
                    if month.month == 1:
                        fetched.openings[month.year] = balances.opening
            if last:
                for year, balances in zip(openings, opened, strict=True):
                    fetched.openings[year] = balances.opening
            async with self.session_factory() as db:
                await store.store(db, job.client_id, fetched, mirror_deletions=job.mirror_deletions)
                if not last:
                    await self._progress(db, job.client_id, len(batch) + first)
                else:
                    if months:  # the notes these fetches answered
                        await pending.clear(db, job.client_id, months, fetched_at=started)
                    await self._succeeded(db, job, stats, months=months)
                await db.commit()

    def _count(self, system: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.syncs.labels(system=system, result=result).inc()
            if result == "failed":
                self._metrics.sync_failures.inc()

    async def _progress(self, db: AsyncSession, client_id: int, steps: int) -> None:
        # Still alive: renew the lease (if one is held), so nobody else starts this client.
        params = {
            "client_id": client_id,
            "steps": steps,
            "expires_at": utcnow() + self.settings.lease,
        }
        await db.exec(PROGRESS, params=params)  # type: ignore[call-overload]

    async def _pending(self, db: AsyncSession, client_id: int) -> dict[Month, str]:
        """The months noted as changed, and who noted each."""
        rows = await db.exec(pending.OF_CLIENT, params={"client_id": client_id})  # type: ignore[call-overload]
        return {Month(year, month): source for year, month, source in rows.all()}

    async def _succeeded(
        self, db: AsyncSession, job: _Job, stats: RequestStats, *, months: list[Month]
    ) -> None:
        now = utcnow()
        client = {
            "client_id": job.client_id,
            "now": now,
            "full": job.full,
            "owner": job.lease_owner,
            "live_recheck": now + self.settings.live_recheck,
            "poll": now + self.settings.poll_interval,
        }
        await db.exec(SUCCEEDED, params=client)  # type: ignore[call-overload]
        run = {
            "run_id": job.run_id,
            "now": now,
            "request_count": stats.requests,
            "retry_count": stats.retries,
            "period_count": len(months),
        }
        await db.exec(RUN_SUCCEEDED, params=run)  # type: ignore[call-overload]

    async def _failed(self, job: _Job, exc: ErpError, stats: RequestStats) -> None:
        client_id, run_id, connector = job.client_id, job.run_id, job.connector
        now = utcnow()
        async with self.session_factory() as db:
            client = await db.get(Client, client_id)
            run = await db.get(SyncRun, run_id)
            if run is not None:
                run.result, run.finished_at = "failed", now
                run.requests, run.retries = stats.requests, stats.retries
                run.error = f"{type(exc).__name__}: {exc}"[:500]
            if client is not None:
                client.sync_failures += 1
                if client.sync_failures == SHOW_AFTER_FAILURES:  # persistent now: tell them
                    await publishing.record_sync_failed(db, client_id)
                if isinstance(exc, KeyRejected):
                    integration = await db.get(Integration, client.integration_id)
                    if integration is None or integration_service.has_client_keys(integration):
                        # Only this client's own key is refused: the others go on.
                        error = client_key_invalid(connector.display_name)
                    else:
                        integration.key_status = "invalid"
                        error = KEY_INVALID
                    client.sync_status, client.sync_error = SyncStatus.KEY_ERROR, error
                    client.sync_due_at = None  # waits for a new key
                elif isinstance(exc, AccessDenied):
                    client.sync_status = SyncStatus.NO_ACCESS
                    client.sync_error = connector.wording.no_api_access
                    client.sync_due_at = now + self.settings.no_access_retry
                else:
                    client.sync_status = SyncStatus.ERROR
                    name = connector.display_name
                    client.sync_error = (
                        rate_limited(name) if isinstance(exc, RateLimited) else unavailable(name)
                    )
                    backoff = self.settings.retry_after * 2 ** min(client.sync_failures - 1, 6)
                    client.sync_due_at = now + backoff
            await db.commit()
        log.warning(
            "sync failed client=%s error=%s request_id=%s",
            client_id,
            type(exc).__name__,
            exc.request_id,
        )


@dataclass(frozen=True)
class _Job:
    """What a sync needs once it has started, read in its first transaction."""

    connector: Connector  # of the integration's system
    client_id: int
    integration_id: int
    run_id: int
    key: str
    company: CompanyRef
    mirror_deletions: bool
    full: bool
    lease_owner: str | None
    ask_changes: bool  # polling: ask a system that can tell which months changed
    window: tuple[Month, ...]  # the months kept


def _trigger(client: Client, full: bool, notes: dict[Month, str], polling: bool) -> str:
    """What the sync history names as the reason for a run the scheduler started."""
    if client.synced_at is None:
        return "activation"
    if full and client.full_sync:
        return "manual"
    if "nightly" in notes.values():
        return "nightly"
    if notes and not polling:
        return "webhook"
    return "poll" if client.live_mode != LiveMode.WEBHOOKS else "schedule"


async def _all(fetches: Iterable[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run side by side, results in order; the first failure cancels the rest."""
    tasks = [asyncio.ensure_future(f) for f in fetches]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # every outcome collected
        raise


def _batches(months: list[Month], size: int) -> list[list[Month]]:
    return [months[i : i + size] for i in range(0, len(months), size)]


def _later_years(months: list[Month], today: date) -> set[int]:
    if not months:
        return set()
    return set(range(min(m.year for m in months) + 1, today.year + 1))


def _januaries(months: list[Month]) -> set[int]:
    return {m.year for m in months if m.month == 1}
