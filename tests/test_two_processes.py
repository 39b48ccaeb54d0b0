"""Two app processes behind one PostgreSQL serve one office consistently."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from cryptography.fernet import Fernet

from tests import databases
from tests.conftest import PASSWORD, Simulator, free_port
from tests.processes import serve

ROOT = Path(__file__).resolve().parents[1]
CONSUMER_TOKEN = "two-process-consumer"

pytestmark = pytest.mark.skipif(
    not databases.ON_POSTGRES, reason="runs in the PostgreSQL pass (TEST_DATABASE_URL)"
)


@pytest.fixture
def shared_env(simulator: Simulator, tmp_path: Path) -> Iterator[dict[str, str]]:
    simulator.state.consumer_tokens[CONSUMER_TOKEN] = 2
    database = asyncio.run(databases.create_postgres_database("twoproc"))
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "SECRET_KEY": "two-processes-share-this-secret-key-0123456789",
        "ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "TRIPLETEX_BASE_URL": simulator.base_url,
        "TRIPLETEX_CONSUMER_TOKEN": CONSUMER_TOKEN,
        "LOG_FORMAT": "text",
        "DATA_DIR": str(tmp_path),
        "SYNC_TICK_SECONDS": "1",
    }
    env.pop("DEMO", None)
    subprocess.run(
        [sys.executable, "app.py", "create-user", "--email", "to@kontor.no", "--office", "To AS"],
        cwd=ROOT,
        env=env,
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )
    yield env
    asyncio.run(databases.drop_postgres_database(database))


def start(env: dict[str, str], tmp_path: Path, name: str) -> tuple[subprocess.Popen, str]:
    env = {**env, "PORT": str(free_port())}
    return serve([sys.executable, "app.py", "run"], cwd=ROOT, env=env, log=tmp_path / f"{name}.log")


def _fetch(url: str, sql: str) -> list[tuple]:
    async def run() -> list[tuple]:
        connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(run())


def wait_for_first_syncs(url: str, timeout: float) -> dict[int, int]:
    """Sync runs per active client, once every active client has had one."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = _fetch(
            url,
            "select count(*) from client c where c.active and not exists "
            "(select 1 from sync_run r where r.client_id = c.id and r.result <> 'running')",
        )[0][0]
        if waiting == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    time.sleep(2)  # a second, wrongly claimed sync would show up by now
    return dict(_fetch(url, "select client_id, count(*) from sync_run group by client_id"))


def leases_held(url: str) -> int:
    return _fetch(url, "select count(*) from client where lease_owner is not null")[0][0]


def test_two_processes_share_logins_and_data(shared_env: dict[str, str], tmp_path: Path) -> None:
    first, first_url = start(shared_env, tmp_path, "first")
    second, second_url = start(shared_env, tmp_path, "second")
    try:
        a = httpx.Client(base_url=first_url)
        a.get("/login")
        a.post(
            "/login",
            data={
                "email": "to@kontor.no",
                "password": PASSWORD,
                "_csrf_token": a.cookies["erp_csrf"],
            },
        )
        # The login made on the first process is valid on the second.
        b = httpx.Client(base_url=second_url, cookies=a.cookies)
        assert "Logg ut" in b.get("/integrasjoner").text

        created = a.post(
            "/integrasjoner/ny",
            data={
                "key": "demo-regnskapskontor",
                "description": "Delt",
                "_csrf_token": a.cookies["erp_csrf"],
            },
        )
        page_path = created.headers["location"]
        client_id = re.findall(r'<tr id="client-(\d+)"', b.get(page_path).text)[0]
        switched = b.post(
            f"{page_path}/klienter/{client_id}/active",
            data={"on": "true"},
            headers={"HX-Request": "true", "x-csrftoken": b.cookies["erp_csrf"]},
        )
        assert switched.status_code == 200
        assert "Aktive klienter: <strong>1</strong>" in a.get(page_path).text

        # Both processes run the scheduler: between them, every client is synced once.
        a.post(f"{page_path}/aktiver-alle", data={"_csrf_token": a.cookies["erp_csrf"]})
        runs = wait_for_first_syncs(shared_env["DATABASE_URL"], timeout=90)
        assert runs and all(count == 1 for count in runs.values()), runs
        assert leases_held(shared_env["DATABASE_URL"]) == 0
        for name in ("first", "second"):  # both took part
            assert "synced client=" in (tmp_path / f"{name}.log").read_text(), name

        b.post("/logout", data={"_csrf_token": b.cookies["erp_csrf"]})
        assert a.get("/integrasjoner").headers.get("location") == "/login"
    finally:
        for process in (first, second):
            process.terminate()
            process.wait(timeout=10)
