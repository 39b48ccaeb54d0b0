"""The data folder and what the app keeps in it are readable by the app's user only.

The real command line, in a subprocess (as operators and the container run it), under the
usual umask 022 that would otherwise leave the database world-readable.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.processes import serve

pytestmark = pytest.mark.database_agnostic  # SQLite in its own DATA_DIR, whatever the run's
ROOT = Path(__file__).resolve().parent.parent
SQLITE_FILES = ("erp.sqlite3", "erp.sqlite3-wal", "erp.sqlite3-shm")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update(DEMO="true", DATA_DIR=str(tmp_path / "data"), LOG_FORMAT="text")
    saved = os.umask(0o022)  # what the child inherits: a common default, not ours
    try:
        yield env
    finally:
        os.umask(saved)


def migrate(env: dict[str, str], cwd: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "migrate"],
        cwd=cwd,  # no .env from the working tree
        env=env,
        check=True,
        capture_output=True,
    )


def test_a_fresh_data_folder_is_private(demo_env: dict[str, str], tmp_path: Path) -> None:
    data = Path(demo_env["DATA_DIR"])

    migrate(demo_env, tmp_path)

    assert mode(data) == 0o700
    assert mode(data / "erp.sqlite3") == 0o600
    assert mode(data / "demo-secrets.json") == 0o600
    for name in SQLITE_FILES[1:]:  # only if SQLite left them behind
        if (data / name).exists():
            assert mode(data / name) == 0o600, name


def test_the_running_app_writes_its_wal_privately(demo_env: dict[str, str], tmp_path: Path) -> None:
    data = Path(demo_env["DATA_DIR"])
    env = {**demo_env, "PORT": str(free_port())}

    process, _ = serve(
        [sys.executable, str(ROOT / "app.py"), "run", "--demo"],
        cwd=tmp_path,
        env=env,
        log=tmp_path / "server.log",
    )
    try:
        # While the app holds its connections, SQLite keeps its write-ahead log beside it.
        modes = {name: mode(data / name) for name in SQLITE_FILES}
    finally:
        process.terminate()
        process.wait(timeout=30)

    assert modes == dict.fromkeys(SQLITE_FILES, 0o600)
    assert mode(data) == 0o700


def test_an_existing_data_folder_left_open_is_closed(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    """An older version (or a careless `mkdir`) left the folder and database readable."""
    data = Path(demo_env["DATA_DIR"])
    migrate(demo_env, tmp_path)
    data.chmod(0o755)
    (data / "erp.sqlite3").chmod(0o644)
    (data / "demo-secrets.json").chmod(0o644)
    (data / "notes.txt").write_text("the operator's own file")
    (data / "notes.txt").chmod(0o644)

    migrate(demo_env, tmp_path)

    assert mode(data) == 0o700
    assert mode(data / "erp.sqlite3") == 0o600
    assert mode(data / "demo-secrets.json") == 0o600
    assert mode(data / "notes.txt") == 0o644  # not ours to change; the folder guards it


def test_a_database_outside_the_data_folder_left_open_is_closed(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    """DATABASE_URL may put the SQLite file anywhere: it holds the same books."""
    elsewhere = tmp_path / "db"
    elsewhere.mkdir()
    database = elsewhere / "kontoret.sqlite3"
    demo_env["DATABASE_URL"] = f"sqlite:///{database}"
    migrate(demo_env, tmp_path)
    database.chmod(0o644)

    migrate(demo_env, tmp_path)

    assert mode(database) == 0o600
