"""Receiving SAF-T files and running their imports in the background.

A file arrives as a stream of chunks (the browser's and the API's request body alike) and is
written straight to a fresh file in the upload directory, counted against the limit as it
comes: never held in memory, and never named after anything the sender said. The import
runs as a task of this process; whoever started it may wait a little for the result (the
API answers 201 when it is quick, 202 and a place to ask otherwise), and the file is
removed when the import is done with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import anyio
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration, SaftImport
from services import audit
from services.audit import Actor
from services.clients import audit_about
from services.clients import audit_target as client_target
from services.connectors.base import FileSystem
from services.db import SessionFactory
from services.integrations import audit_target as integration_target
from services.integrations import display_name
from services.saft import importer

log = logging.getLogger(__name__)
MB = 1024 * 1024


class UploadRefused(Exception):
    """The upload is not taken (too large, empty); `message` is Norwegian."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large
        self.record: SaftImport | None = None  # the refusal as the history shows it


def megabytes(size: int) -> str:
    """12345678 → '11,7 MB' (rounded down)."""
    tenths = size * 10 // MB
    return f"{tenths // 10},{tenths % 10} MB"


def too_large_message(limit: int) -> str:
    return (
        f"Filen er større enn grensen på {megabytes(limit)}. Store SAF-T-filer kan deles i "
        "perioder i regnskapssystemet; driftsansvarlig kan heve grensen (SAFT_MAX_UPLOAD_MB)."
    )


async def receive(
    chunks: AsyncIterator[bytes], system: FileSystem, *, declared_size: int | None = None
) -> Path:
    """Write an upload to a new file in the system's upload directory; raises UploadRefused
    (and leaves no file behind) when it is larger than allowed or empty."""
    limit = system.max_upload_bytes
    if declared_size is not None and declared_size > limit:
        raise UploadRefused(too_large_message(limit), too_large=True)
    directory = anyio.Path(system.upload_dir)
    await directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{secrets.token_hex(16)}.xml"
    written = 0
    try:
        async with await anyio.open_file(path, "xb") as target:
            async for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise UploadRefused(too_large_message(limit), too_large=True)
                await target.write(chunk)
        if written == 0:
            raise UploadRefused("Filen er tom. Velg SAF-T-filen som regnskapssystemet eksporterte.")
    except BaseException:
        await path.unlink(missing_ok=True)
        raise
    return Path(path)


# An upload's file lives while its import runs (minutes at most); older ones were left by a
# process that was killed, and hold a company's whole accounts.
LEFT_BEHIND_AFTER = timedelta(hours=1)


def sweep(directory: Path, now: float | None = None) -> int:
    """Remove upload files left behind by killed processes; returns how many."""
    cutoff = (time.time() if now is None else now) - LEFT_BEHIND_AFTER.total_seconds()
    removed = 0
    for path in directory.glob("*.xml") if directory.is_dir() else ():
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


class ImportRunner:
    """The imports running in this process, each a task that removes its file when done."""

    def __init__(self, factory: SessionFactory) -> None:
        self._factory = factory
        self._tasks: dict[int, asyncio.Task[SaftImport]] = {}

    async def accept(
        self,
        integration: Integration,
        system: FileSystem,
        chunks: AsyncIterator[bytes],
        *,
        file_name: str,
        source: str,
        actor: Actor,
        declared_size: int | None = None,
    ) -> SaftImport:
        """Receive an upload and start its import. A refused upload is recorded in the
        history too, and raised (UploadRefused, with `record` set). Each import's outcome
        is recorded in the audit log as `actor`'s."""
        try:
            path = await receive(chunks, system, declared_size=declared_size)
        except UploadRefused as refused:
            row = await importer.begin(
                self._factory,
                integration,
                file_name=file_name,
                source=source,
                size=declared_size or 0,
            )
            refused.record = await importer.finish_refused(
                self._factory,
                row.id or 0,
                [refused.message],
                _recording(actor, integration, system),
            )
            raise
        return await self.start(
            integration, system, path, file_name=file_name, source=source, actor=actor
        )

    async def start(
        self,
        integration: Integration,
        system: FileSystem,
        path: Path,
        *,
        file_name: str,
        source: str,
        actor: Actor,
    ) -> SaftImport:
        row = await importer.begin(
            self._factory,
            integration,
            file_name=file_name,
            source=source,
            size=(await anyio.Path(path).stat()).st_size,
        )
        assert row.id is not None
        done = self._run(row.id, path, actor, integration, system)
        task = asyncio.create_task(done, name=f"saft-import-{row.id}")
        self._tasks[row.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(row.id or 0, None))
        return row

    async def _run(
        self,
        import_id: int,
        path: Path,
        actor: Actor,
        integration: Integration,
        system: FileSystem,
    ) -> SaftImport:
        finishing = _recording(actor, integration, system)
        try:
            return await importer.run(self._factory, import_id, path, finishing)
        finally:
            await anyio.Path(path).unlink(missing_ok=True)

    async def wait(self, import_id: int, seconds: float) -> bool:
        """Wait up to `seconds` for an import of this process; True when it is done (or
        not running here)."""
        task = self._tasks.get(import_id)
        if task is None:
            return True
        done, _ = await asyncio.wait({task}, timeout=seconds)
        return bool(done)

    async def close(self) -> None:
        """At shutdown: stop running imports. Each stores nothing unless it completes (its
        one transaction), and its row says it was interrupted."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _recording(actor: Actor, integration: Integration, system: FileSystem) -> importer.Finishing:
    """The import in the audit log (the file, what came of it, the months it covered),
    written in the import's last transaction."""

    async def record(db: AsyncSession, row: SaftImport) -> None:
        client = await db.get(Client, row.client_id) if row.client_id else None
        target = (
            client_target(client)
            if client is not None
            else integration_target(integration, system.display_name)
        )
        about = (
            audit_about(
                client.id, client.integration_id, display_name(integration, system.display_name)
            )
            if client is not None
            else {}
        )
        audit.record(
            db,
            actor,
            "saft.import",
            target,
            file=row.file_name,
            status=row.status,
            months=_months(row),
            **about,
        )

    return record


def _months(row: SaftImport) -> str:
    """The months a file covered, as "2025-01–2025-12" ("" when none was read)."""
    if row.first_year is None or row.first_month is None:
        return ""
    first = f"{row.first_year}-{row.first_month:02d}"
    last = f"{row.last_year}-{(row.last_month or 0):02d}" if row.last_year else first
    return first if first == last else f"{first}–{last}"
