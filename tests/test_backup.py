"""`app.py backup` and `app.py restore`: a backup taken while the app writes is the database
as of one instant, and a restore takes only a whole database of ours."""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import stat
import threading
from contextlib import closing, redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import anyio
import pytest
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from litestar.testing import AsyncTestClient

import app
from services.db import alembic_config, migrate
from services.settings import Settings
from tests import databases
from tests.conftest import Simulator, create_integration, htmx, query
from tests.sync_support import sync_engine

# The commands work on SQLite files (PostgreSQL is only refused): the same on either run.
pytestmark = pytest.mark.database_agnostic
HEAD = ScriptDirectory.from_config(alembic_config("")).get_current_head()
ENCRYPTION_KEY = Fernet.generate_key().decode()


def run_cli(*argv: str, data_dir: Path, database_url: str = "") -> tuple[int, str, str]:
    """`python app.py ARGV` in this process, with the environment an operator would give it.
    Returns the exit code, what it printed and what it logged or complained on stderr."""
    env = {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "backup-test-secret-key-that-is-long-enough",
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "TRIPLETEX_CONSUMER_TOKEN": "backup-test-consumer-token",
        "DEMO": "",
        "LOG_FORMAT": "text",
    }
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    umask = os.umask(0o077)
    os.umask(umask)
    out, err = io.StringIO(), io.StringIO()
    try:
        with mock.patch.dict(os.environ, env), redirect_stdout(out), redirect_stderr(err):
            code = app.main(list(argv))
    finally:  # the command sets the process's logging and umask; the test run keeps its own
        root.handlers[:] = handlers
        root.setLevel(level)
        os.umask(umask)
    return code, out.getvalue(), err.getvalue()


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def every_row(path: Path) -> dict[str, list[tuple]]:
    with closing(sqlite3.connect(path)) as db:
        names = [
            row[0]
            for row in db.execute(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
            )
        ]
        return {name: sorted(db.execute(f'select * from "{name}"'), key=repr) for name in names}


class Writer:
    """Writes continuously to the database as a sync does, each transaction in three tables:
    a sync run, a change row, and the client's progress counter set to the transaction's
    number. So any instant of the database is known from its counter alone."""

    def __init__(self, path: Path, client_id: int, office_id: int) -> None:
        self.path, self.client_id, self.office_id = path, client_id, office_id
        self.committed: list[tuple[int, int]] = []  # (sync_run id, data_change id) per commit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert self.error is None, self.error

    def wait_for(self, count: int) -> None:
        while len(self.committed) < count:
            assert self.error is None and self._thread.is_alive(), self.error
            self._stop.wait(0.005)

    def _run(self) -> None:
        try:
            with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
                db.execute("pragma foreign_keys=on")
                while not self._stop.is_set():
                    self._write(db, len(self.committed) + 1)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _write(self, db: sqlite3.Connection, number: int) -> None:
        now = "2026-11-29 12:00:00.000000"
        db.execute("begin immediate")
        (run_id,) = db.execute(
            'insert into sync_run (client_id, kind, "trigger", started_at, result, requests, '
            "retries, periods) values (?, 'incremental', 'webhook', ?, 'ok', 3, 0, 1) "
            "returning id",
            (self.client_id, now),
        ).fetchone()
        (change_id,) = db.execute(
            "insert into data_change (office_id, client_id, kind, year, month, changed_at) "
            "values (?, ?, 'balances', 2026, ?, ?) returning id",
            (self.office_id, self.client_id, number % 12 + 1, now),
        ).fetchone()
        db.execute("update client set progress_done = ? where id = ?", (number, self.client_id))
        db.execute("commit")
        self.committed.append((run_id, change_id))


async def fill(client: AsyncTestClient, settings: Settings, simulator: Simulator) -> None:
    """An office's database as the app fills it: clients, synced books, a token."""
    integration_id = await create_integration(client)
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    client_ids = [r[0] for r in await query(settings, "select id from client order by id")]
    async with sync_engine(settings, simulator) as engine:
        for client_id in client_ids[:3]:
            assert await engine.sync_client(client_id, trigger="manual") == "ok"


@pytest.mark.anyio
@pytest.mark.skipif(databases.ON_POSTGRES, reason="the app's database must be SQLite here")
async def test_a_backup_taken_while_the_app_writes_restores_one_instant_of_every_table(
    client: AsyncTestClient, settings: Settings, simulator: Simulator, tmp_path: Path
) -> None:
    await fill(client, settings, simulator)
    source = Path(settings.database_url.split(":///", 1)[1])
    ((client_id, office_id),) = await query(
        settings,
        "select c.id, i.office_id from client c join integration i on i.id = c.integration_id "
        "order by c.id limit 1",
    )
    backup_file = tmp_path / "backups" / "erp-backup.sqlite3"
    backup_file.parent.mkdir()
    with Writer(source, client_id, office_id) as writer:
        writer.wait_for(20)
        written_before = len(writer.committed)
        code, out, err = await anyio.to_thread.run_sync(
            lambda: run_cli(
                "backup", str(backup_file), data_dir=tmp_path, database_url=settings.database_url
            )
        )
        writer.wait_for(len(writer.committed) + 20)
    fresh = tmp_path / "fresh-data"
    restored = await anyio.to_thread.run_sync(
        lambda: run_cli("restore", str(backup_file), data_dir=fresh)
    )
    check_one_instant(
        source, (code, out, err), backup_file, restored, fresh, writer, written_before, client_id
    )


def check_one_instant(
    source: Path,
    backed_up: tuple[int, str, str],
    backup_file: Path,
    restored_by: tuple[int, str, str],
    fresh: Path,
    writer: Writer,
    written_before: int,
    client_id: int,
) -> None:
    code, out, err = backed_up
    assert code == 0, err
    assert f"to {backup_file}:" in out and f"schema {HEAD}" in out and "tables" in out
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    assert not Path(f"{backup_file}-wal").exists()  # one self-contained file
    code, out, err = restored_by
    assert code == 0, err
    restored = every_row(fresh / "erp.sqlite3")
    source_now = every_row(source)

    # The instant the backup caught: the counter the writer set in its last transaction in
    # the backup. Every table must be the source as of that transaction, no row more or less.
    progress = columns(source, "client").index("progress_done")
    (instant,) = [row[progress] for row in restored["client"] if row[0] == client_id]
    assert written_before <= instant < len(writer.committed)
    later_runs = {run for run, _ in writer.committed[instant:]}
    later_changes = {change for _, change in writer.committed[instant:]}
    expected = dict(source_now)
    expected["sync_run"] = [r for r in source_now["sync_run"] if r[0] not in later_runs]
    expected["data_change"] = [r for r in source_now["data_change"] if r[0] not in later_changes]
    expected["client"] = sorted(
        [
            (*r[:progress], instant, *r[progress + 1 :]) if r[0] == client_id else r
            for r in source_now["client"]
        ],
        key=repr,
    )
    assert restored.keys() == expected.keys()
    for table in expected:
        assert restored[table] == expected[table], table
    assert restored["month_movement"] and restored["account"]


def columns(path: Path, table: str) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [row[1] for row in db.execute(f"pragma table_info('{table}')")]


def database(path: Path, revision: str = "head", *, office: str | None = "Kontoret AS") -> Path:
    """A migrated database file, with an office (data) unless `office` is None."""
    migrate(sqlite_url(path), revision)
    with closing(sqlite3.connect(path)) as db:
        if office:
            db.execute(
                "insert into office (name, created_at) values (?, '2026-11-29 12:00:00')",
                (office,),
            )
            db.commit()
        db.execute("pragma journal_mode=delete")  # every row in the file itself
    return path


def offices(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [row[0] for row in db.execute("select name from office order by id")]


def test_a_backup_does_not_replace_a_file_unless_forced(tmp_path: Path) -> None:
    source = database(tmp_path / "data" / "erp.sqlite3")
    dest = tmp_path / "erp-backup.sqlite3"
    url = sqlite_url(source)
    assert run_cli("backup", str(dest), data_dir=tmp_path, database_url=url)[0] == 0
    with closing(sqlite3.connect(source)) as db:
        db.execute("update office set name = 'Kontoret etterpå AS'")
        db.commit()

    code, _, err = run_cli("backup", str(dest), data_dir=tmp_path, database_url=url)
    assert code == 1
    assert f"Backup refused: {dest} exists already" in err and "--force" in err
    assert offices(dest) == ["Kontoret AS"]
    code, _, err = run_cli("backup", str(dest), "--force", data_dir=tmp_path, database_url=url)
    assert code == 0, err
    assert offices(dest) == ["Kontoret etterpå AS"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "erp-backup.sqlite3"]


def test_a_backup_onto_the_database_itself_is_refused_even_when_forced(tmp_path: Path) -> None:
    """Renamed over the live file, the app's later writes would land in the unlinked one."""
    source = database(tmp_path / "data" / "erp.sqlite3")
    url = sqlite_url(source)
    inode = source.stat().st_ino
    code, _, err = run_cli("backup", str(source), "--force", data_dir=tmp_path, database_url=url)
    assert code == 1
    assert "is the database itself" in err
    assert source.stat().st_ino == inode and offices(source) == ["Kontoret AS"]


@pytest.mark.parametrize(("command", "tool"), [("backup", "pg_dump"), ("restore", "pg_restore")])
def test_on_postgresql_backup_and_restore_refuse_and_name_its_tool(
    tmp_path: Path, command: str, tool: str
) -> None:
    backup_file = database(tmp_path / "erp-backup.sqlite3")
    code, out, err = run_cli(
        command,
        str(tmp_path / "new.sqlite3") if command == "backup" else str(backup_file),
        data_dir=tmp_path,
        database_url="postgresql://erp@127.0.0.1:9/erp",  # nothing listens: never connected
    )
    assert code == 1 and out == ""
    assert f"DATABASE_URL is PostgreSQL: use {tool}" in err
    assert not (tmp_path / "new.sqlite3").exists()


def damaged(path: Path) -> None:
    """A database whose user_account row no longer matches its index (a bad disk)."""
    database(path)
    with closing(sqlite3.connect(path)) as db:
        (office_id,) = db.execute("select id from office").fetchone()
        db.execute(
            "insert into user_account (office_id, email, password_hash, created_at) "
            "values (?, 'regnskap@kontor.no', 'x', '2026-11-29 12:00:00')",
            (office_id,),
        )
        db.commit()
        db.execute("pragma journal_mode=delete")
    data = path.read_bytes()
    path.write_bytes(data.replace(b"regnskap@kontor.no", b"REGNSKAP@kontor.no", 1))


def newer(path: Path) -> None:
    database(path)
    with closing(sqlite3.connect(path)) as db:
        db.execute("update alembic_version set version_num = '0099'")
        db.commit()


def not_ours(path: Path) -> None:
    with closing(sqlite3.connect(path)) as db:
        db.execute("create table invoice (id integer primary key, amount text)")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda p: p.write_text("id;navn\n1;Kontoret AS\n"),
            "is not a SQLite database, or is damaged",
            id="not-a-database",
        ),
        pytest.param(
            not_ours, "is a SQLite database, but not one of ERP-integrasjon", id="not-ours"
        ),
        pytest.param(
            damaged, "fails SQLite's integrity check: row 1 missing from index", id="damaged"
        ),
        pytest.param(
            newer,
            "has the schema version 0099, which this release does not know (its newest is "
            f"{HEAD}): it comes from a newer release",
            id="newer-schema",
        ),
    ],
)
def test_restore_refuses_anything_but_a_whole_backup_of_ours(
    tmp_path: Path, make: object, message: str
) -> None:
    src = tmp_path / "backup.sqlite3"
    make(src)  # type: ignore[operator]
    data_dir = tmp_path / "data"
    code, out, err = run_cli("restore", str(src), data_dir=data_dir)
    assert code == 1 and out == ""
    assert f"Restore refused: {src} " in err and message in err, err
    assert list(data_dir.iterdir()) == []  # no database made, no temporary file left


def test_restore_replaces_a_database_with_data_only_when_forced(tmp_path: Path) -> None:
    backup_file = database(tmp_path / "backup.sqlite3", office="Fra sikkerhetskopien AS")
    target = database(tmp_path / "data" / "erp.sqlite3", office="Nåværende AS")

    code, _, err = run_cli("restore", str(backup_file), data_dir=target.parent)
    assert code == 1
    assert f"The database {target} has data already" in err and "--force" in err
    assert offices(target) == ["Nåværende AS"]
    code, _, err = run_cli("restore", str(backup_file), "--force", data_dir=target.parent)
    assert code == 0, err
    assert offices(target) == ["Fra sikkerhetskopien AS"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_restore_refuses_while_the_app_has_the_database_open(tmp_path: Path) -> None:
    backup_file = database(tmp_path / "backup.sqlite3")
    target = database(tmp_path / "data" / "erp.sqlite3", office=None)  # empty: no --force needed
    with closing(sqlite3.connect(target)) as app_connection:  # as a running app holds it
        app_connection.execute("pragma journal_mode=wal")
        app_connection.execute("select count(*) from office").fetchone()
        code, _, err = run_cli("restore", str(backup_file), "--force", data_dir=target.parent)
        assert code == 1
        assert f"The database {target} is in use: stop the app" in err
    assert offices(target) == []
    code, _, err = run_cli("restore", str(backup_file), data_dir=target.parent)
    assert code == 0, err
    assert offices(target) == ["Kontoret AS"]


def test_restore_of_an_older_release_backup_migrates_it(tmp_path: Path) -> None:
    backup_file = database(tmp_path / "backup.sqlite3", "0004")
    data_dir = tmp_path / "data"
    code, out, err = run_cli("restore", str(backup_file), data_dir=data_dir)
    assert code == 0, err
    assert f"schema 0004, upgraded to {HEAD}" in out
    with closing(sqlite3.connect(data_dir / "erp.sqlite3")) as db:
        assert db.execute("select version_num from alembic_version").fetchall() == [(HEAD,)]
    assert offices(data_dir / "erp.sqlite3") == ["Kontoret AS"]
