"""PowerOffice Go syncs through our engine survive what goes wrong (issue 18's bars): with a
fifth of all requests failing (5xx, 429, requests the server sits on past our timeout) the
onboarded clients still end exactly equal to PowerOffice's books, a sync that fails outright
is shown as failed and redone; and a sync process killed mid-way (SIGKILL) leaves whole
months only, its work redone once its lease expires.

The simulator is served on a real socket here: timeouts are our HTTP client's own, and the
worker process of the crash test reaches it as it would reach PowerOffice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pytest

from services.audit import Actor
from services.clients import ClientQuery, set_all_active
from services.connectors.poweroffice import (
    DEMO_APPLICATION_KEY,
    DEMO_SUBSCRIPTION_KEY,
    PowerOfficeClient,
    PowerOfficeConnector,
)
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.onboarding import create_onboarded_integration
from services.outbound import outbound
from services.settings import Settings
from services.sync.engine import INTERRUPTED, MONTHS_PER_COMMIT, SyncEngine, SyncSettings
from services.sync.periods import window
from services.sync.scheduler import SchedulerSettings, SyncRunner
from services.sync.status import rate_limited, unavailable
from simulators.poweroffice import create_poweroffice_app
from simulators.poweroffice.faults import ERROR_KINDS
from simulators.poweroffice.model import Client as Books
from tests import test_poweroffice_connector as connector_tests
from tests.conftest import OfficeDb, free_port, query
from tests.poweroffice_spec import spec_validator
from tests.processes import served_here
from tests.sync_support import stored_month
from tests.test_poweroffice_connector import PREFIX, TODAY, World, _expected, _month, _nonzero
from tests.test_poweroffice_sync import approved_token

pytestmark = pytest.mark.anyio
world = connector_tests.world  # the simulator (onboarding goes through it in process)
ROOT = Path(__file__).resolve().parents[1]
ZERO = Decimal("0.00")
WINDOW = window(TODAY, 2)
# With this seed the first three requests fail with a 5xx: the first sync's token request
# and both its retries, so that sync fails outright (the rest fail as they come).
SEED = 1471
HTTP_TIMEOUT = 0.5  # ours; an injected timeout is a request the server sits on for longer


@dataclass
class Served:
    base_url: str  # what PowerOfficeClient's base_url is set to (`/v2` and `/OAuth/Token`)
    problems: list[str] = field(default_factory=list)


@pytest.fixture
async def served(world: World) -> AsyncIterator[Served]:
    """The world's simulator (same state) behind a real loopback port, in this event loop;
    every answer checked against PowerOffice's spec as in process."""
    validator = spec_validator()
    port = free_port()
    found = Served(f"http://127.0.0.1:{port}{PREFIX}")

    def check(method: str, path: str, status: int, body: bytes) -> None:
        if path in validator.spec["paths"]:
            found.problems.extend(validator.validate(method, path, status, body))

    app = create_poweroffice_app(world.state, prefix=PREFIX, on_response=check)
    async with served_here(app, port):
        try:
            yield found
        finally:
            world.state.set_faults(latency_seconds=0.0, error_rate=0.0)
    assert not found.problems, "\n".join(found.problems[:20])


@asynccontextmanager
async def http_engine(
    settings: Settings, office_db: OfficeDb, world: World, served: Served
) -> AsyncIterator[SyncEngine]:
    """Our sync engine with the PowerOffice connector over real HTTP (the app's pool), with
    the app's retry policy (two retries) and a short backoff."""
    async with outbound(HTTP_TIMEOUT) as out:
        client = PowerOfficeClient(
            out.erp,
            base_url=served.base_url,
            application_key=DEMO_APPLICATION_KEY,
            subscription_key=DEMO_SUBSCRIPTION_KEY,
            backoff=0.01,
        )
        yield SyncEngine(
            office_db.factory,
            KeyVault(settings.encryption_keys),
            Connectors([PowerOfficeConnector(client, wall_clock=world.state.clock.now)]),
            SyncSettings(years=2),
            today=lambda: TODAY,
        )


async def onboard(
    settings: Settings, office_db: OfficeDb, world: World, count: int
) -> list[tuple[int, Books]]:
    """Onboard `count` clients the integration may reach and switch them on (Aktiver alle);
    our client id and PowerOffice's books of each."""
    reachable = [c.id for c in world.state.clients.values() if not c.access_withdrawn]
    actor = Actor(office_id=office_db.office_id, label="test")
    async with office_db.factory() as db:
        integration = await create_onboarded_integration(
            db,
            KeyVault(settings.encryption_keys),
            world.connector,
            actor,
            raw_description="PowerOffice-klienter",
            token=await approved_token(world, sorted(reachable)[:count]),
        )
        assert integration.id is not None
        activated = await set_all_active(
            db, integration.id, True, ClientQuery(), actor, target="PowerOffice-klienter"
        )
        assert activated == count
    rows = await query(
        settings, f"SELECT id, org_number FROM client WHERE integration_id = {integration.id}"
    )
    by_org = {c.org_no: c for c in world.state.clients.values()}
    return [(client_id, by_org[org]) for client_id, org in sorted(rows)]


def books_month(books: Books, year: int, month: int) -> dict[int, tuple[Decimal, Decimal]]:
    """(opening, movement) per account with either, straight from PowerOffice's vouchers."""
    opening, movement = _expected(books, *_month(year, month))
    return {
        number: (opening.get(number, ZERO), movement.get(number, ZERO))
        for number in _nonzero(opening).keys() | _nonzero(movement).keys()
    }


async def stored_months_exact(
    settings: Settings, engine: SyncEngine, client_id: int, books: Books
) -> int:
    """Every month with anything stored equals PowerOffice's books, opening and movement
    (so no month is half there); returns how many months are stored."""
    months = await query(
        settings,
        f"SELECT DISTINCT year, month FROM month_movement WHERE client_id = {client_id}",
    )
    for year, month in months:
        stored = await stored_month(engine, client_id, year, month)
        assert stored == books_month(books, year, month), (client_id, year, month)
    return len(months)


async def all_months_exact(engine: SyncEngine, client_id: int, books: Books) -> None:
    for month in WINDOW:
        stored = await stored_month(engine, client_id, month.year, month.month)
        assert stored == books_month(books, month.year, month.month), (client_id, month)


async def test_a_fifth_of_requests_failing_still_ends_exact_and_failures_show(
    settings: Settings, office_db: OfficeDb, world: World, served: Served
) -> None:
    clients = await onboard(settings, office_db, world, 3)
    world.state.set_faults(
        error_rate=0.2, error_kinds=ERROR_KINDS, fault_seed=SEED, timeout_delay_seconds=1.0
    )
    attempts: dict[int, list[str]] = {}
    async with http_engine(settings, office_db, world, served) as engine:
        for client_id, books in clients:
            tried = attempts[client_id] = []
            while not tried or tried[-1] != "ok":
                assert len(tried) < 6, f"client {client_id} never synced: {tried}"
                # As the scheduler runs it (and runs it again after a failure).
                tried.append(await engine.sync_client(client_id))
                if tried[-1] == "ok":
                    continue
                assert tried[-1] == "failed"
                # Shown as failed, not as synced: the status, the message, the history.
                (status, error, synced_at, failures), *_ = await query(
                    settings,
                    "SELECT sync_status, sync_error, synced_at, sync_failures FROM client "
                    f"WHERE id = {client_id}",
                )
                assert (status, synced_at) == ("error", None)
                assert error in (unavailable("PowerOffice Go"), rate_limited("PowerOffice Go"))
                assert failures == len(tried)
                (result, run_error), *_ = await query(
                    settings,
                    f"SELECT result, error FROM sync_run WHERE client_id = {client_id} "
                    "ORDER BY id DESC",
                )
                assert result == "failed"
                assert run_error.startswith(("ErpUnavailable", "RateLimited"))
                # What it committed before failing is whole months, each exactly right.
                await stored_months_exact(settings, engine, client_id, books)
            await all_months_exact(engine, client_id, books)
            status = await query(settings, f"SELECT sync_status FROM client WHERE id = {client_id}")
            assert status == [("ok",)]

        # The seed fails the very first sync outright (its token request, three times).
        assert attempts[clients[0][0]][0] == "failed"
        # Later syncs changed nothing already right: every client is still exact.
        for client_id, books in clients:
            await all_months_exact(engine, client_id, books)

    runs = await query(
        settings, "SELECT client_id, result, retries FROM sync_run ORDER BY client_id, id"
    )
    assert [(c, r) for c, r, _ in runs] == [(c, r) for c, tried in attempts.items() for r in tried]
    assert sum(retries for _, result, retries in runs if result == "ok") > 0  # the faults hit


async def test_killed_sync_leaves_whole_months_and_is_redone_after_its_lease(
    settings: Settings, office_db: OfficeDb, world: World, served: Served
) -> None:
    [(client_id, books)] = await onboard(settings, office_db, world, 1)
    world.state.set_faults(latency_seconds=0.2)  # slow enough to be caught between commits
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.poweroffice_sync_worker", settings.database_url,
        served.base_url, str(client_id), "2", TODAY.isoformat(),
        cwd=ROOT,
        env={**os.environ, "ENCRYPTION_KEY": settings.encryption_keys[0]},
    )  # fmt: skip
    first_commit = MONTHS_PER_COMMIT + 1  # a year of months and the chart of accounts
    assert len(WINDOW) > MONTHS_PER_COMMIT  # so a sync commits more than once
    deadline = time.monotonic() + 30
    while True:
        (done, total), *_ = await query(
            settings, f"SELECT progress_done, progress_total FROM client WHERE id = {client_id}"
        )
        if done >= first_commit:
            break
        assert worker.returncode is None and time.monotonic() < deadline, "worker stalled"
        await asyncio.sleep(0.05)
    assert done < total, "the worker finished before it could be killed"
    worker.send_signal(signal.SIGKILL)
    await worker.wait()

    world.state.set_faults(latency_seconds=0.0)
    async with http_engine(settings, office_db, world, served) as engine:
        # What the dead process committed is whole months, each exactly PowerOffice's.
        stored = await stored_months_exact(settings, engine, client_id, books)
        assert 0 < stored < len(WINDOW), stored
        owner = await query(settings, f"SELECT lease_owner FROM client WHERE id = {client_id}")
        assert owner[0][0].startswith("worker:")  # the lease outlives its holder...

        runner = SyncRunner(office_db.factory, engine, SchedulerSettings())
        assert await runner.tick() == 0  # ...and nobody takes the client while it lasts
        await asyncio.sleep(2.1)
        assert await runner.tick() == 1  # expired: the work is redone
        await runner.drain()
        await all_months_exact(engine, client_id, books)

    history = await query(
        settings, f"SELECT result, error FROM sync_run WHERE client_id = {client_id} ORDER BY id"
    )
    assert history == [("failed", INTERRUPTED), ("ok", None)]
    status = await query(
        settings, f"SELECT sync_status, lease_owner FROM client WHERE id = {client_id}"
    )
    assert status == [("ok", None)]
