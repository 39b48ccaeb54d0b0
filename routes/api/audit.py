"""/api/v1/audit: the office's audit log for tokens that may read it, so the office can ship
it to its own log store. Oldest first from a cursor, like /changes: poll with `next_cursor`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter
from sqlmodel.ext.asyncio.session import AsyncSession

from models.audit import AuditEvent
from routes.api.errors import LIST_ERRORS, ApiError, bad_request
from routes.api.schemas import Cursor, Problem
from routes.api.v1 import decode_cursor, encode_cursor, with_etag
from routes.params import MAX_BIG_INT
from services import audit, audit_log
from services.api_tokens import Caller
from services.audit_log import LogFilter, Position

MAX_MICROS = 253402300799 * 10**6  # 9999-12-31T23:59:59Z
AUDIT_ERRORS = {
    **LIST_ERRORS,
    403: ResponseSpec(
        Problem, description="This token may not read the audit log (Kan lese revisjonsloggen)"
    ),
}

Limit = Annotated[int, QueryParameter(ge=1, le=1000, description="Events per page (1–1000)")]
Moment = Annotated[
    str | None,
    QueryParameter(
        description="An ISO 8601 time, e.g. 2026-11-29T08:00:00Z, or a date, e.g. 2026-11-29: "
        "a day in Norway (Europe/Oslo), as the log page's Fra/Til read it: `since` from the "
        "start of that day, `until` through its end. A time without an offset is UTC.",
        max_length=40,
    ),
]


class AuditEventOut(msgspec.Struct):
    """One change or sign-in. `actor` is the e-mail or `API-nøkkel: <name>` at the time;
    `details` holds before/after values, counts and filters (never a secret's value)."""

    id: int
    at: datetime
    kind: str
    kind_name: str  # the Norwegian name the log page shows
    actor: str
    actor_type: Literal["user", "api_token", "none"]
    actor_user_id: int | None
    actor_token_id: int | None
    target: str
    details: dict[str, Any]
    address: str  # the client's address, where one was recorded


class AuditEventList(msgspec.Struct):
    data: list[AuditEventOut]
    next_cursor: Cursor  # always: poll again with it
    has_more: bool


def event_out(event: AuditEvent) -> AuditEventOut:
    assert event.id is not None
    actor_type: Literal["user", "api_token", "none"] = (
        "user" if event.actor_user_id else "api_token" if event.actor_token_id else "none"
    )
    return AuditEventOut(
        id=event.id,
        at=audit_log.as_utc(event.at),
        kind=event.kind,
        kind_name=audit_log.kind_name(event.kind),
        actor=event.actor_label,
        actor_type=actor_type,
        actor_user_id=event.actor_user_id,
        actor_token_id=event.actor_token_id,
        target=event.target_label,
        details=audit_log.details_of(event),
        address=event.address,
    )


def parse_moment(field: str, value: str | None, *, end: bool = False) -> datetime | None:
    """A time, or a bare date as an Oslo day: its start, or (`end`) the next day's start."""
    if not value:
        return None
    if (day := audit_log.bare_date(value)) is not None:
        if not 1970 <= day.year <= 9998:
            raise bad_request(field, f"{field}: out of range")
        return audit_log.oslo_day_start(day + timedelta(days=1) if end else day)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise bad_request(field, f"{field}: expected an ISO 8601 time or date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 1970 <= moment.astimezone(UTC).year <= 9998:
        raise bad_request(field, f"{field}: out of range")
    return moment.astimezone(UTC)


class AuditController(Controller):
    path = "/audit"
    tags = ["Audit"]

    @get("/", responses=AUDIT_ERRORS, summary="Audit log")
    async def audit_log(
        self,
        request: Request,
        db: NamedDependency[AsyncSession],
        caller: NamedDependency[Caller],
        cursor: Annotated[
            str | None,
            QueryParameter(
                description="`next_cursor` of the previous call; none to start from the oldest",
                max_length=200,
            ),
        ] = None,
        limit: Limit = 100,
        kind: Annotated[
            str | None,
            QueryParameter(
                description="Only events of this kind, e.g. `client.active`", max_length=60
            ),
        ] = None,
        since: Moment = None,
        until: Moment = None,
    ) -> Response[AuditEventList]:
        """Who changed what, and when: the office's audit log, oldest first, after the
        cursor. `since` (inclusive) and `until` (exclusive) narrow it to a period; a date
        alone is a day in Norway (Europe/Oslo), `until` a date includes that day. Only tokens
        created with *Kan lese revisjonsloggen* may read it (else 403).

        Events are handed out once they are 30 seconds old: an event's time is taken when it
        is recorded, and a change still being saved may commit one older than the newest
        already committed. Waiting that long means a poller following `next_cursor` never
        skips an event; the newest half minute appears in the next poll."""
        if not caller.reads_audit:
            raise ApiError(
                403,
                "forbidden",
                "This token may not read the audit log; an administrator can create one "
                "that may (Kan lese revisjonsloggen)",
            )
        if kind is not None and kind not in audit.KINDS:
            raise bad_request("kind", f"kind: one of {', '.join(sorted(audit.KINDS))}")
        start, end = parse_moment("since", since), parse_moment("until", until, end=True)
        after = decode_cursor(cursor, MAX_MICROS, MAX_BIG_INT)
        position = Position.from_micros(after[0], after[1]) if after else None
        wanted = LogFilter(kind=kind, since=start, until=end)
        rows = await audit_log.events_from(db, caller.office_id, wanted, position, limit + 1)
        page = rows[:limit]
        last = Position.of(page[-1]) if page else position
        next_cursor = encode_cursor(last.micros, last.id) if last else ""
        return with_etag(
            request,
            AuditEventList(
                data=[event_out(e) for e in page],
                next_cursor=next_cursor,
                has_more=len(rows) > limit,
            ),
        )
