"""SAF-T files pushed by an office's local systems: `POST` a file to one of the office's SAF-T
integrations (the raw body, streamed to disk) and read what came of it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath, QueryParameter
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, SaftFinding, SaftImport
from models.saft import ImportStatus
from routes.api.errors import CLIENT_ERRORS, ApiError, not_found
from routes.api.schemas import Problem, SaftFindingOut, SaftImportOut
from routes.saft import content_length
from services import integrations as integration_service
from services.api_tokens import Caller
from services.connectors.registry import Connectors
from services.saft import history
from services.saft.importer import Source
from services.saft.uploads import ImportRunner, UploadRefused
from web.middleware import XML_MEDIA_TYPES

# How long the POST waits for the import before answering 202 with a place to ask.
WAIT_FOR_RESULT = 5.0
CENT = Decimal("0.01")

FileName = Annotated[
    str, QueryParameter(max_length=255, description="The file's name, shown in the history")
]
IMPORT_ERRORS = {
    **{status: spec for status, spec in CLIENT_ERRORS.items() if status != 304},
    202: ResponseSpec(SaftImportOut, description="Still importing: poll the Location"),
    413: ResponseSpec(Problem, description="Larger than the limit (SAFT_MAX_UPLOAD_MB)"),
    415: ResponseSpec(Problem, description="Not sent as application/xml"),
    422: ResponseSpec(SaftImportOut, description="Refused: `problems` says why; nothing stored"),
}


@dataclass
class FileUpload(Operation):
    """The POST's body as the schema tells it: the file itself, not a JSON document (the
    handler streams the body; a declared `data` would be read into memory first)."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={
                "application/xml": OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                )
            },
            description="The SAF-T Financial file (XML), as the system exported it",
            required=True,
        )


class SaftImportsController(Controller):
    tags = ["SAF-T"]

    @post(
        "/integrations/{integration_id:int}/saft-imports",
        request_max_body_size=None,  # the system's limit, counted as the body streams
        responses=IMPORT_ERRORS,
        summary="Import a SAF-T Financial file",
        operation_class=FileUpload,
        status_code=201,
    )
    async def create(
        self,
        request: Request,
        db: NamedDependency[AsyncSession],
        caller: NamedDependency[Caller],
        connectors: NamedDependency[Connectors],
        saft_imports: NamedDependency[ImportRunner],
        integration_id: FromPath[int],
        filename: FileName = "saft.xml",
    ) -> Response:
        """The file is the raw request body (`Content-Type: application/xml`). The answer is
        the import: 201 when done (imported, or unchanged: the same file as before), 422
        when refused (nothing stored), 202 with a `Location` to poll while it runs."""
        integration = await integration_service.get_integration(
            db, caller.office_id, integration_id
        )
        system = connectors.file_system(integration.system) if integration else None
        if integration is None or system is None:
            raise not_found("SAF-T integration")
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in XML_MEDIA_TYPES:
            raise ApiError(415, "unsupported_media_type", "Send the file as application/xml")
        await db.close()  # no connection held while the body streams in
        try:
            row = await saft_imports.accept(
                integration,
                system,
                request.stream(),
                file_name=filename,
                source=Source.API,
                actor=caller.actor,
                declared_size=content_length(request),
            )
        except UploadRefused as refused:
            if refused.too_large:
                raise ApiError(413, "too_large", refused.message) from None
            assert refused.record is not None
            return await _answer(db, refused.record, 422)
        assert row.id is not None
        if not await saft_imports.wait(row.id, WAIT_FOR_RESULT):
            return await _answer(db, row, 202)
        current = await db.get(SaftImport, row.id, populate_existing=True)
        if current is None:  # the integration was deleted meanwhile
            raise not_found("SAF-T integration")
        status = {ImportStatus.REFUSED: 422, ImportStatus.FAILED: 500}.get(
            ImportStatus(current.status), 201
        )
        return await _answer(db, current, status)

    @get(
        "/saft-imports/{import_id:int}",
        responses=CLIENT_ERRORS,
        summary="One SAF-T import",
    )
    async def read(
        self,
        db: NamedDependency[AsyncSession],
        caller: NamedDependency[Caller],
        import_id: FromPath[int],
    ) -> Response:
        """An import of one of the office's integrations, with its warnings."""
        found = await history.get_import(db, caller.office_id, import_id)
        if found is None:
            raise not_found("SAF-T import")
        row = found[0]
        if row.client_id is not None:
            # A token sees what a client's file said only while its SEND DATA is on.
            client = await db.get(Client, row.client_id)
            if client is None or not client.send_data:
                raise not_found("SAF-T import")
        return await _answer(db, row, 200)


async def _answer(db: AsyncSession, row: SaftImport, status: int) -> Response:
    assert row.id is not None
    findings = await history.findings_of(db, row.id)
    headers = {"Cache-Control": "no-store"}
    if status == 202:
        headers["Location"] = f"/api/v1/saft-imports/{row.id}"
    return Response(
        content=msgspec.json.encode(import_out(row, findings)),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def import_out(row: SaftImport, findings: list[SaftFinding]) -> SaftImportOut:
    assert row.id is not None
    return SaftImportOut(
        id=row.id,
        status=history.status_of(row),  # type: ignore[arg-type]
        integration_id=row.integration_id,
        client_id=row.client_id,
        file_name=row.file_name,
        size_bytes=row.size_bytes,
        audit_file_version=row.audit_file_version,
        company_name=row.company_name,
        org_number=row.org_number,
        first_month=_month(row.first_year, row.first_month),
        last_month=_month(row.last_year, row.last_month),
        accounts=row.account_count,
        transactions=row.transaction_count,
        lines=row.line_count,
        started_at=row.started_at,
        finished_at=row.finished_at,
        problems=history.problems_of(row),
        warnings=[finding_out(f) for f in findings],
        warnings_omitted=row.findings_omitted,
    )


def finding_out(finding: SaftFinding) -> SaftFindingOut:
    return SaftFindingOut(
        kind=finding.kind,  # type: ignore[arg-type]
        message=finding.message,
        account=finding.account,
        transaction_id=finding.transaction_id,
        journal_id=finding.journal_id,
        period_year=finding.period_year,
        period=finding.period,
        line=finding.line,
        line_count=finding.line_count,
        opening=_amount(finding.opening),
        movements=_amount(finding.movements),
        computed_closing=_amount(finding.computed_closing),
        file_closing=_amount(finding.file_closing),
        debit=_amount(finding.debit),
        credit=_amount(finding.credit),
        total=_amount(finding.total),
    )


def _amount(value: Decimal | None) -> str | None:
    return None if value is None else format(value.quantize(CENT), "f")


def _month(year: int | None, month: int | None) -> str | None:
    return f"{year:04d}-{month:02d}" if year and month else None
