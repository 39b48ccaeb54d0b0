"""Innstillinger → Logg: the audit log for administrators (filter, page, CSV, retention)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Response, Stream, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from routes.auth import client_address
from routes.forms import Form, field
from services import audit, audit_log
from services.audit_log import LogFilter, LogInputError, Position
from services.auth import CurrentUser
from services.exports import content_disposition
from web.dependencies import Services, wants_fragment
from web.guards import ADMINISTRATOR

BASE = "/innstillinger/logg"
NO_STORE = {"Cache-Control": "no-store"}
# What the log's rows are rendered with (Oslo time, Norwegian names, readable details).
HELPERS = {
    "audit_time": audit_log.local_time,
    "audit_kind": audit_log.kind_name,
    "audit_details": audit_log.describe,
}


class AuditLogController(Controller):
    path = BASE
    include_in_schema = False
    opt = ADMINISTRATOR

    @get("/")
    async def log(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        hvem: FromQuery[str] = "",
        hva: FromQuery[str] = "",
        fra: FromQuery[str] = "",
        til: FromQuery[str] = "",
        klient: FromQuery[str] = "",
        eldre: FromQuery[str] = "",
        nyere: FromQuery[str] = "",
    ) -> Template:
        """The newest events, or those before `eldre` / after `nyere` (positions handed out
        by the page's own links); an htmx request gets the list alone."""
        form = {"hvem": hvem, "hva": hva, "fra": fra, "til": til, "klient": klient}
        context: dict[str, Any] = {
            **HELPERS,
            "form": form,
            "query": _query(form),
            "error": None,
        }
        status = 200
        try:
            wanted = audit_log.parse_form_filter(hvem, hva, fra, til, klient)
            before = _position("eldre", eldre)
            after = _position("nyere", nyere) if before is None else None
        except LogInputError as exc:
            context["error"] = exc
            context["log"] = audit_log.LogPage([], None, None)
            status = 422
        else:
            context["log"] = await audit_log.page(
                db, user.office_id, wanted, before=before, after=after
            )
            if wanted.client_id is not None:
                context["client_name"] = await audit_log.client_name(
                    db, user.office_id, wanted.client_id
                )
        if wants_fragment(request):
            return Template(
                "partials/audit_events.html", context=context, status_code=status, headers=NO_STORE
            )
        return await _page(db, user, context, status)

    @get("/logg.csv")
    async def export(
        self,
        services: NamedDependency[Services],
        user: NamedDependency[CurrentUser],
        hvem: FromQuery[str] = "",
        hva: FromQuery[str] = "",
        fra: FromQuery[str] = "",
        til: FromQuery[str] = "",
        klient: FromQuery[str] = "",
    ) -> Response:
        """Eksporter CSV: the whole filtered log, newest first, streamed."""
        try:
            wanted = audit_log.parse_form_filter(hvem, hva, fra, til, klient)
        except LogInputError as exc:
            return Response(content=exc.message, status_code=400, media_type="text/plain")
        name = audit_log.csv_file_name(wanted, utcnow().astimezone(audit_log.OSLO).date())
        return Stream(
            audit_log.csv_chunks(services.session_factory, user.office_id, wanted),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": content_disposition(name), **NO_STORE},
        )

    @post("/lagring", status_code=200)
    async def retention(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        data: Form,
    ) -> Template:
        """Behold loggen i N år: saved, and recorded in the log itself."""
        raw = field(data, "years")
        try:
            years = audit_log.parse_years(raw)
        except LogInputError as exc:
            return await _retention(db, user, request, raw=raw, error=exc.message)
        changed = await audit_log.set_retention(
            db, audit.actor_of(user, client_address(request)), years
        )
        notice = f"Loggen beholdes i {years} år." if changed else "Ingen endring."
        return await _retention(db, user, request, notice=notice)


def _position(name: str, token: str) -> Position | None:
    if not token:
        return None
    try:
        return Position.parse(token)
    except ValueError:
        raise LogInputError(name, "Lenken til denne siden av loggen er ugyldig.") from None


def _query(form: dict[str, str]) -> str:
    """The filter as a query string (for the paging and export links)."""
    return urlencode({k: v for k, v in form.items() if v})


async def _page(
    db: AsyncSession, user: CurrentUser, context: dict[str, Any], status: int
) -> Template:
    years = await audit_log.retention_years(db, user.office_id)
    return Template(
        "pages/settings_audit.html",
        context={
            **context,
            "user": user,
            "tab": "logg",
            "people": await audit_log.people(db, user.office_id),
            "kinds": sorted(audit.KINDS.items(), key=lambda item: item[1]),
            "retention": {"years": years, "raw": str(years), "error": None, "notice": None},
        },
        status_code=status,
        headers=NO_STORE,
    )


async def _retention(
    db: AsyncSession,
    user: CurrentUser,
    request: HTMXRequest,
    *,
    raw: str | None = None,
    error: str | None = None,
    notice: str | None = None,
) -> Template:
    years = await audit_log.retention_years(db, user.office_id)
    retention = {"years": years, "raw": raw or str(years), "error": error, "notice": notice}
    status = 422 if error else 200
    if wants_fragment(request):
        return Template(
            "partials/audit_retention.html",
            context={"retention": retention},
            status_code=status,
            headers=NO_STORE,
        )
    form = {"hvem": "", "hva": "", "fra": "", "til": ""}
    context = {
        **HELPERS,
        "form": form,
        "query": "",
        "error": None,
        "log": await audit_log.page(db, user.office_id, LogFilter()),
    }
    page = await _page(db, user, context, status)
    page.context["retention"] = retention
    return page
