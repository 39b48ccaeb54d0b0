"""`python app.py import-saft` as an operator's script runs it, and an import killed with
SIGKILL halfway: the previous state stays whole and the history says it was interrupted."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from models.base import utcnow
from services.saft.importer import STALE_AFTER
from services.settings import Settings
from tests.conftest import execute, query
from tests.saft_files import Break, random_books, write_saft
from tests.test_saft_import import snapshot
from tests.test_saft_web import create_saft_integration

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent


def command_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": settings.encryption_keys[0],
        "TRIPLETEX_CONSUMER_TOKEN": "operator-token",
        "LOG_FORMAT": "text",
    }


async def import_saft(settings: Settings, path: Path, integration_id: int) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "app.py", "import-saft", str(path), "--integration", str(integration_id),
        cwd=ROOT, env=command_env(settings),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_import_saft_prints_the_result_and_fails_on_a_refused_file(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    good = write_saft(tmp_path / "eksport.xml", random_books(year=2023))

    status, out = await import_saft(settings, good.path, integration_id)

    assert status == 0, out
    assert "Importert: eksport.xml" in out
    assert "Testfirma AS (987654325), januar–desember 2023: 20 kontoer" in out
    bad = write_saft(tmp_path / "bad.xml", random_books(), breakage=Break.WRONG_NAMESPACE)
    status, out = await import_saft(settings, bad.path, integration_id)
    assert status == 1 and "Avvist: bad.xml" in out and "SAF-T" in out
    status, out = await import_saft(settings, good.path, 999)
    assert status == 1 and "takes no SAF-T files" in out


async def test_a_killed_import_leaves_the_previous_state_whole(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    first = write_saft(tmp_path / "first.xml", random_books(year=2025, seed=1))
    assert (await import_saft(settings, first.path, integration_id))[0] == 0
    before = await snapshot(settings)
    # Large enough to be caught while it is read (a few seconds).
    newer = write_saft(
        tmp_path / "newer.xml", random_books(year=2025, seed=2), lines_per_movement=400
    )

    process = await asyncio.create_subprocess_exec(
        sys.executable, "app.py", "import-saft", str(newer.path), "--integration",
        str(integration_id), cwd=ROOT, env=command_env(settings),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not await query(
        settings, "SELECT id FROM saft_import WHERE status = 'running' AND progress_bytes > 0"
    ):
        assert process.returncode is None and time.monotonic() < deadline, "import ended early"
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    await process.wait()

    assert await snapshot(settings) == before
    [(killed_id,)] = await query(settings, "SELECT id FROM saft_import WHERE status = 'running'")
    page = await client.get(f"/integrasjoner/{integration_id}")
    assert "Importerer" in page.text  # its heartbeat is recent: it might still be running
    # Silent past STALE_AFTER (as if the time had passed), the history says it died.
    silent = (utcnow() - STALE_AFTER - timedelta(seconds=1)).replace(tzinfo=None)
    await execute(
        settings,
        f"UPDATE saft_import SET heartbeat_at = '{silent.isoformat(sep=' ')}' "
        f"WHERE id = {killed_id}",
    )
    page = await client.get(f"/integrasjoner/{integration_id}")
    assert "Avbrutt" in page.text and "Ingenting fra filen er lagret" in page.text
    # The same file again is imported (not taken for one already imported).
    status, out = await import_saft(settings, newer.path, integration_id)
    assert status == 0 and "Importert" in out
