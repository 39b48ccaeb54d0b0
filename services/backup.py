"""Backing up the SQLite database while the app runs, and restoring a backup.

PostgreSQL has its own tools (pg_dump, pg_restore); these refuse it. Every refusal is a
BackupError whose message says what to do, for the command line to print.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from alembic.script import ScriptDirectory

from services.db import alembic_config, migrate, sqlite_path

VERSION_TABLE = "alembic_version"


class BackupError(Exception):
    """The backup or restore was refused or failed; nothing was changed."""


def backup(database_url: str, dest: Path, *, force: bool = False) -> str:
    """Copy the database to `dest` as it was at one instant, while the app goes on writing.
    Returns a one-line summary."""
    source = _sqlite_path(database_url, "pg_dump")
    if not source.is_file():
        raise BackupError(f"There is no database at {source}.")
    if dest.is_dir():
        raise BackupError(f"{dest} is a folder: give the name of the backup file to write.")
    if dest.resolve() == source.resolve():
        # Renamed over the live file, the app's later writes would go to the unlinked one.
        raise BackupError(f"{dest} is the database itself: write the backup somewhere else.")
    if dest.exists() and not force:
        raise BackupError(f"{dest} exists already: choose another name, or add --force.")
    if not dest.parent.is_dir():
        raise BackupError(f"The folder {dest.parent} does not exist.")
    with _temporary_beside(dest) as temporary:
        try:
            _copy(source, temporary)
        except sqlite3.Error as exc:
            raise BackupError(f"Could not copy {source}: {exc}") from None
        with closing(_connect(temporary)) as copy:
            tables, version = _describe(copy)
        _install(temporary, dest)
    return (
        f"Backed up {source} to {dest}: {_size(dest.stat().st_size)}, {tables} tables, "
        f"schema {version}."
    )


def restore(database_url: str, src: Path, *, force: bool = False) -> str:
    """Replace the configured database with the backup `src`, then migrate it to this
    release's schema. Returns a one-line summary."""
    target = _sqlite_path(database_url, "pg_restore")
    if not src.is_file():
        raise BackupError(f"There is no file {src}.")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if target.exists():
        _check_replaceable(target, force=force)
    with _temporary_beside(target) as temporary:
        try:
            _copy(src, temporary)
            with closing(_connect(temporary)) as copy:
                version = _check_backup(copy, src)
                tables, _ = _describe(copy)
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{src} is not a SQLite database, or is damaged ({exc}).") from None
        # A write-ahead log left beside the old database would be replayed into the new one.
        for leftover in ("-wal", "-shm", "-journal"):
            Path(f"{target}{leftover}").unlink(missing_ok=True)
        _install(temporary, target)
    migrate(database_url)
    head = _head()
    upgraded = f", upgraded to {head}" if head != version else ""
    return f"Restored {src} into {target}: {tables} tables, schema {version}{upgraded}."


def _sqlite_path(database_url: str, postgres_tool: str) -> Path:
    path = sqlite_path(database_url)
    if path is None:
        raise BackupError(
            f"DATABASE_URL is PostgreSQL: use {postgres_tool} (see the README, Backups)."
        )
    return path


def _copy(source: Path, temporary: Path) -> None:
    """`source` as of one instant into `temporary`, while others go on writing to it.

    One step (pages=-1) is one read transaction, so the copy is the database as of one
    commit, and in WAL mode writers do not wait for it. (In smaller steps, a write between
    two of them restarts the copy: under steady syncs it might never finish.)"""
    with closing(_connect(source, read_only=True)) as src, closing(_connect(temporary)) as dst:
        src.backup(dst, pages=-1)
        # The copy is in WAL mode like its source: make it one self-contained file.
        dst.execute("PRAGMA journal_mode=DELETE")


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    # A URI, so that a missing source is an error instead of a new empty database.
    mode = "ro" if read_only else "rwc"
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=30)


def _check_replaceable(target: Path, *, force: bool) -> None:
    """Refuses while anything has the database open, and, without force, when it has data."""
    try:
        with closing(sqlite3.connect(target, timeout=0, isolation_level=None)) as db:
            # In WAL mode every connection holds a shared lock on the file for as long as it
            # is open, idle or not: an exclusive lock is had only when the app is stopped.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("BEGIN EXCLUSIVE")
            tables = [name for name in _table_names(db) if name != VERSION_TABLE]
            has_data = any(db.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables)
            db.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise BackupError(
                f"The database {target} is in use: stop the app (every process) first."
            ) from None
        has_data = True  # unreadable: replacing it takes --force too
    except sqlite3.DatabaseError:
        has_data = True
    if has_data and not force:
        raise BackupError(
            f"The database {target} has data already. Restoring replaces all of it: add "
            "--force if that is what you want (back it up first)."
        )


def _check_backup(db: sqlite3.Connection, src: Path) -> str:
    """The backup's migration version, once it is known to be whole and ours."""
    problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"{src} fails SQLite's integrity check: {'; '.join(problems[:3])}")
    if VERSION_TABLE not in _table_names(db):
        raise BackupError(f"{src} is a SQLite database, but not one of ERP-integrasjon.")
    row = db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    known = {script.revision for script in _scripts().walk_revisions()}
    if row is None or row[0] not in known:
        raise BackupError(
            f"{src} has the schema version {row[0] if row else 'none'}, which this release "
            f"does not know (its newest is {_head()}): it comes from a newer release. "
            "Restore it with that release or a later one."
        )
    return row[0]


def _describe(db: sqlite3.Connection) -> tuple[int, str]:
    """How many tables the database has, and its migration version."""
    names = _table_names(db)
    version = "none"
    if VERSION_TABLE in names:
        row = db.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        version = row[0] if row else version
    return len([n for n in names if n != VERSION_TABLE]), version


def _table_names(db: sqlite3.Connection) -> list[str]:
    rows = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return [row[0] for row in rows]


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(""))


def _head() -> str:
    return _scripts().get_current_head() or "none"


@contextmanager
def _temporary_beside(path: Path) -> Iterator[Path]:
    """A new file (mode 0600) in the folder of `path`, so that it can be renamed onto `path`
    in one step; removed (with any journal of its own) unless it was."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    temporary = Path(name)
    try:
        yield temporary
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(f"{temporary}{suffix}").unlink(missing_ok=True)


def _install(temporary: Path, path: Path) -> None:
    """Rename the finished file into place, durably: on disk before and after the rename."""
    with temporary.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"
