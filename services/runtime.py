"""How the serving process runs: settings for the interpreter itself, and the files it makes."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path

from services.db import sqlite_path

log = logging.getLogger(__name__)

# Allocations between young-generation collections (CPython's default is 2,000). Requests
# and syncs make many short-lived objects that reference counting frees anyway; collecting
# every 2,000 allocations stalled the event loop often enough to double the 99th percentile
# of webhook answers (bench/README.md).
YOUNG_COLLECTION_EVERY = 50_000


def tune_gc() -> None:
    """Call once everything long-lived is built (modules, app, templates): those objects are
    moved out of the collector's sight (gc.freeze), so a full collection no longer walks
    them, and young collections run less often."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 20)


# Files and folders this process creates are its user's alone: the SQLite database and its
# -wal/-shm files (an office's books, password hashes, encrypted keys) and demo-secrets.json.
PRIVATE_UMASK = 0o077
# What the app itself keeps in DATA_DIR; made private also where an older version left them
# readable to others.
OWN_FILES = ("erp.sqlite3", "erp.sqlite3-wal", "erp.sqlite3-shm", "demo-secrets.json")


def private_files() -> None:
    """Call first thing at process start, before anything is created."""
    os.umask(PRIVATE_UMASK)


def secure_data_dir(data_dir: Path, database_url: str) -> None:
    """DATA_DIR (if there is one yet) readable by its owner only: 0700, our files in it 0600;
    and the SQLite database 0600 wherever DATABASE_URL puts it."""
    files = [data_dir / name for name in OWN_FILES]
    if (database := sqlite_path(database_url)) is not None:
        files += [Path(f"{database}{suffix}") for suffix in ("", "-wal", "-shm")]
    try:
        if data_dir.is_dir():  # not made yet: whatever makes it does so under the umask
            data_dir.chmod(0o700)
        for path in files:
            if path.is_file():
                path.chmod(0o600)
    except PermissionError as exc:  # e.g. a volume mounted owned by another user
        log.warning("Could not make DATA_DIR private to its owner: %s", exc)
