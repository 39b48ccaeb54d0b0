"""Shared fixtures: a Tripletex simulator on a real port, a migrated database per test,
and the app under Litestar's test client, logged in as an accountant."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from litestar.testing import AsyncTestClient

from services.connectors.poweroffice import PowerOfficeSettings
from services.connectors.saft import SaftSettings
from services.connectors.tripletex import TripletexSettings
from services.db import (
    SessionFactory,
    create_engine,
    create_session_factory,
    migrate,
    open_session,
)
from services.logging_setup import install_log_context
from services.settings import Settings, SyncConfig
from simulators import poweroffice as poweroffice_simulator
from simulators.tripletex import SimulatorState, create_simulator_app, seed_demo
from tests import databases
from tests.processes import served_in_thread
from tests.tripletex_spec import SpecValidator

PASSWORD = "riktig-passord-123"

# The simulator serves from a thread of this process. With the default 5 ms switch interval
# every request waits for the GIL to come back from that thread: a convoy that made the sync
# tests several times slower than the work they do.
sys.setswitchinterval(0.0005)


# Every log record of the whole run goes to one file, which must not hold a demo secret in
# any form by the end (the browser tests check their server's own log the same way).
RUN_LOG = Path(tempfile.gettempdir()) / f"erp-test-run-{os.getpid()}.log"
SECRETS = ("demo-regnskapskontor", "demo-eget-selskap", "demo-consumer-token", PASSWORD)


def pytest_configure(config: pytest.Config) -> None:
    install_log_context()  # as create_app does; records made before any app are covered too
    handler = logging.FileHandler(RUN_LOG, mode="w", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(min(logging.getLogger().level or logging.INFO, logging.INFO))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not RUN_LOG.exists():
        return
    text = RUN_LOG.read_text(encoding="utf-8", errors="replace")
    leaked = [secret for secret in SECRETS if secret in text]
    if leaked:
        print(f"\nSECRETS IN THE LOGS of this run ({RUN_LOG}): {leaked}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        RUN_LOG.unlink()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Fast tests first; the browser tests (slowest, own event loop) run last."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _no_login_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failed logins wait seconds before their answer: tests that fail a few would crawl.
    tests/test_login_throttle.py puts the real waits back where it checks them."""
    from services import login_throttle

    monkeypatch.setattr(login_throttle, "DELAYS", ())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Simulator:
    """The simulator behind a real socket; each test gets freshly seeded data."""

    base_url: str
    state: SimulatorState
    problems: list[str] = field(default_factory=list)
    responses: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/v2")


class _Swappable:
    """An ASGI app whose target can be replaced between tests without restarting the server."""

    def __init__(self) -> None:
        self.target = None

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            return
        await self.target(scope, receive, send)


@pytest.fixture(scope="session")
def spec() -> SpecValidator:
    return SpecValidator()


def _serve(swappable: _Swappable) -> Iterator[str]:
    port = free_port()
    with served_in_thread(swappable, port, lifespan="on"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def _simulator_server() -> Iterator[tuple[str, _Swappable]]:
    swappable = _Swappable()
    for root in _serve(swappable):
        yield root, swappable


POWEROFFICE_PREFIX = "/poweroffice"


@pytest.fixture(scope="session")
def _poweroffice_server() -> Iterator[tuple[str, _Swappable]]:
    """The PowerOffice Go simulator on its own port; until a test asks for `poweroffice`, a
    demo partner nobody changes answers (no test but those calls it)."""
    swappable = _Swappable()
    swappable.target = poweroffice_simulator.create_poweroffice_app(
        poweroffice_simulator.seed_demo(), prefix=POWEROFFICE_PREFIX
    )
    for root in _serve(swappable):
        yield root + POWEROFFICE_PREFIX, swappable


@dataclass
class PowerOffice:
    """The PowerOffice Go simulator behind a real socket, freshly seeded for the test."""

    base_url: str  # what POWEROFFICE_BASE_URL would be
    state: poweroffice_simulator.PowerOfficeState
    problems: list[str] = field(default_factory=list)


@pytest.fixture
def poweroffice(_poweroffice_server: tuple[str, _Swappable]) -> Iterator[PowerOffice]:
    from tests.poweroffice_spec import spec_validator

    base_url, swappable = _poweroffice_server
    sim = PowerOffice(base_url=base_url, state=poweroffice_simulator.seed_demo())
    validator = spec_validator()

    def check(method: str, path: str, status: int, body: bytes) -> None:
        if path in validator.spec["paths"]:  # the token endpoint is OAuth's, not in the spec
            sim.problems.extend(validator.validate(method, path, status, body))

    previous = swappable.target
    swappable.target = poweroffice_simulator.create_poweroffice_app(
        sim.state, prefix=POWEROFFICE_PREFIX, on_response=check
    )
    yield sim
    swappable.target = previous
    assert not sim.problems, "simulator responses that break PowerOffice's spec:\n" + "\n".join(
        sim.problems[:20]
    )


@pytest.fixture
def simulator(
    _simulator_server: tuple[str, _Swappable], spec: SpecValidator
) -> Iterator[Simulator]:
    root, swappable = _simulator_server
    sim = Simulator(base_url=f"{root}/v2", state=seed_demo())

    def check(method: str, path: str, status: int, body: bytes) -> None:
        sim.responses.append((method, path, status))
        if status != 304:  # no body to validate
            sim.problems.extend(spec.validate(method, path, status, body))

    swappable.target = create_simulator_app(sim.state, on_response=check)
    yield sim
    assert not sim.problems, "simulator responses that break the Tripletex spec:\n" + "\n".join(
        sim.problems[:20]
    )


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This run's migrated database: a SQLite template file, or a PostgreSQL database."""
    if databases.ON_POSTGRES:
        url = asyncio.run(databases.create_postgres_database("test"))
        migrate(url)
        yield url
        asyncio.run(databases.drop_postgres_database(url))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('template') / 'template.sqlite3'}"
        migrate(url)
        yield url


@pytest.fixture
async def scratch_url(tmp_path: Path) -> AsyncIterator[str]:
    """An empty, unmigrated database on the run's backend, for a test to build or break."""
    if databases.ON_POSTGRES:
        url = await databases.create_postgres_database("scratch")
        yield url
        await databases.drop_postgres_database(url)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'scratch.sqlite3'}"


@pytest.fixture
def database_url(migrated_database: str, tmp_path: Path) -> str:
    """An empty, migrated database for one test."""
    if databases.ON_POSTGRES:
        asyncio.run(databases.truncate_all(migrated_database))
        return migrated_database
    path = tmp_path / "erp.sqlite3"
    shutil.copy(migrated_database.split(":///", 1)[1], path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def settings(
    tmp_path: Path,
    database_url: str,
    simulator: Simulator,
    _poweroffice_server: tuple[str, _Swappable],
) -> Settings:
    return Settings(
        demo=False,
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="test-secret-key-that-is-long-enough-123456",
        encryption_keys=(Fernet.generate_key().decode(),),
        systems=(
            TripletexSettings(simulator.base_url, "demo-consumer-token"),
            PowerOfficeSettings(
                _poweroffice_server[0],
                poweroffice_simulator.DEMO_APPLICATION_KEY,
                poweroffice_simulator.DEMO_SUBSCRIPTION_KEY,
            ),
            SaftSettings(max_upload_bytes=50 * 1024 * 1024, upload_dir=tmp_path / "uploads"),
        ),
        # Tests drive the sync engine themselves; no background ticks racing their asserts.
        sync=SyncConfig(enabled=False),
        # Their webhook receivers listen on loopback, over plain http.
        outbound_allow_private=True,
    )


@dataclass
class OfficeDb:
    """An office in the test's database, for tests that call services directly."""

    factory: SessionFactory
    office_id: int


@pytest.fixture
async def office_db(settings: Settings) -> AsyncIterator[OfficeDb]:
    from models import Office

    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    async with factory() as db:
        row = Office(name="Kontor A AS")
        db.add(row)
        await db.commit()
    yield OfficeDb(factory, row.id or 0)
    await engine.dispose()


async def add_user(settings: Settings, email: str, office: str) -> None:
    from services.auth import create_user

    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        await create_user(db, email=email, password=PASSWORD, office_name=office)
    await engine.dispose()


async def query(settings: Settings, sql: str) -> list[tuple]:
    """Rows straight from the test's database, on either backend."""
    from sqlalchemy import text

    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(text(sql))).all()]
    finally:
        await engine.dispose()


async def execute(settings: Settings, sql: str) -> None:
    """A statement straight on the test's database, committed."""
    from sqlalchemy import text

    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(sql))
    finally:
        await engine.dispose()


async def login(client: AsyncTestClient, email: str, password: str = PASSWORD) -> None:
    await client.get("/login")
    response = await client.post(
        "/login",
        data={"email": email, "password": password, "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def csrf(client: AsyncTestClient) -> str:
    return client.cookies.get("erp_csrf") or ""


def htmx(client: AsyncTestClient) -> dict[str, str]:
    """Headers of an htmx request, as the page's <body hx-headers> sends them."""
    return {"HX-Request": "true", "x-csrftoken": csrf(client)}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    from app import create_app

    await add_user(settings, "regnskap@kontor-a.no", "Kontor A AS")
    async with AsyncTestClient(create_app(settings)) as test_client:
        await login(test_client, "regnskap@kontor-a.no")
        yield test_client


async def create_integration(
    client: AsyncTestClient,
    key: str = "demo-regnskapskontor",
    description: str = "Klienter",
    *,
    same_key_as: int | None = None,
) -> int:
    """A new integration; `same_key_as`: the integration that has the key already (a second
    one with the same key is refused unless that is confirmed)."""
    data = {"key": key, "description": description, "_csrf_token": csrf(client)}
    if same_key_as is not None:
        data["same_key_as"] = str(same_key_as)
    response = await client.post("/integrasjoner/ny", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])
