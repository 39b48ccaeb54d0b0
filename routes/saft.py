"""SAF-T files on an integration's page: upload (the file is the raw request body, streamed
to disk, never a form held in memory) and the import's progress and result per file."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Integration, SaftImport
from models.saft import ImportStatus
from routes.auth import client_address
from routes.integrations import owned_integration
from routes.params import ID_GUARDS
from services import audit
from services import clients as client_service
from services.auth import CurrentUser
from services.connectors.base import FileSystem
from services.connectors.registry import Connectors
from services.saft import history
from services.saft.importer import Source
from services.saft.uploads import ImportRunner, UploadRefused
from web.guards import ACCOUNTANT, READER
from web.middleware import XmlBodyOnly

# Seconds an upload's answer waits for a small file's import: its row then shows the result
# at once instead of a progress bar that finishes a second later.
QUICK_RESULT = 2.0


def file_system_of(connectors: Connectors, integration: Integration) -> FileSystem:
    """The integration's system if it takes files; other integrations have no such page."""
    system = connectors.file_system(integration.system)
    if system is None:
        raise NotFoundException()
    return system


def content_length(request: Request) -> int | None:
    """The size the sender declares; the body is still counted as it streams."""
    raw = request.headers.get("content-length", "")
    return int(raw) if raw.isascii() and raw.isdigit() else None


class SaftImportController(Controller):
    path = "/integrasjoner/{integration_id:int}/saft-importer"
    guards = ID_GUARDS
    opt = READER
    dependencies = {"integration": Provide(owned_integration)}

    # The limit is the system's (SAFT_MAX_UPLOAD_MB), counted while the body streams to disk.
    @post(
        "/",
        request_max_body_size=None,
        status_code=201,
        middleware=[XmlBodyOnly],
        opt=ACCOUNTANT,
    )
    async def upload(
        self,
        request: Request,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        connectors: NamedDependency[Connectors],
        saft_imports: NamedDependency[ImportRunner],
        integration: NamedDependency[Integration],
        filnavn: FromQuery[str] = "",
    ) -> Template:
        system = file_system_of(connectors, integration)
        # No connection held while the body streams in (a large file takes minutes).
        await db.close()
        try:
            row = await saft_imports.accept(
                integration,
                system,
                request.stream(),
                file_name=filnavn,
                source=Source.UPLOAD,
                actor=audit.actor_of(user, client_address(request)),
                declared_size=content_length(request),
            )
        except UploadRefused as refused:
            assert refused.record is not None
            status = 413 if refused.too_large else 422
            return await _answer(db, integration, refused.record, status_code=status)
        assert row.id is not None
        await saft_imports.wait(row.id, QUICK_RESULT)
        current = await db.get(SaftImport, row.id, populate_existing=True)
        if current is None:  # the integration was deleted meanwhile
            raise NotFoundException()
        status = 422 if current.status == ImportStatus.REFUSED else 201
        return await _answer(db, integration, current, status_code=status)

    @get("/{import_id:int}")
    async def status(
        self,
        db: NamedDependency[AsyncSession],
        connectors: NamedDependency[Connectors],
        integration: NamedDependency[Integration],
        import_id: FromPath[int],
    ) -> Template:
        """One import's row: polled while it runs, so its progress and result show."""
        file_system_of(connectors, integration)
        row = await db.get(SaftImport, import_id)
        if row is None or row.integration_id != integration.id:
            raise NotFoundException()
        return await _answer(db, integration, row)


async def _answer(
    db: AsyncSession, integration: Integration, row: SaftImport, *, status_code: int = 200
) -> Template:
    """The import's row; once it has stored a client, also the page's new counts, and an
    event that has the client table reload (a new client appears in it)."""
    assert row.id is not None and integration.id is not None
    context = {
        "integration": integration,
        "row": row,
        "findings": await history.finding_count(db, row.id),
    }
    if row.status != ImportStatus.IMPORTED:
        return Template("partials/saft_import.html", context=context, status_code=status_code)
    context |= {"counts": await client_service.counts(db, integration.id), "oob": True}
    return Template(
        "partials/saft_import.html",
        context=context,
        status_code=status_code,
        headers={"HX-Trigger": "saft-imported"},
    )
