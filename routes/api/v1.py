"""The JSON API for the office's downstream products, under /api/v1.

Every request carries `Authorization: Bearer <API-nøkkel>` (Innstillinger → API-nøkler).
A token sees its own office's clients with SEND DATA on, nothing else: any other client id
is 404, whether it exists or not. Lists page with opaque cursors; every 200 carries an ETag
and a request with a matching If-None-Match gets 304.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import re
from datetime import date
from decimal import Decimal
from typing import Annotated

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Account, Client, DataChange, Integration
from routes.api.errors import CLIENT_ERRORS, LIST_ERRORS, ApiError, bad_request, not_found
from routes.api.schemas import (
    AccountList,
    AccountOut,
    BalanceLineOut,
    BalanceReport,
    ChangeList,
    ChangeOut,
    ClientList,
    ClientOut,
    Health,
    Totals,
)
from routes.params import MAX_BIG_INT, MAX_DB_INT
from services import api_tokens, balances, publishing
from services import integrations as integration_service
from services.api_tokens import Caller
from services.balances import Period, TrialBalance
from services.ratelimit import API_LIMITER
from services.saft import history as saft_history
from services.settings import Settings

Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Items per page (1–500)")]
CursorParam = Annotated[
    str | None, QueryParameter(description="`next_cursor` of the previous page", max_length=200)
]
MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")
DAY = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$")
CENT = Decimal("0.01")


async def provide_caller(request: Request, db: NamedDependency[AsyncSession]) -> Caller:
    """The office a bearer token acts for; 401 without a valid token, 429 over its rate."""
    scheme, _, raw = request.headers.get("authorization", "").partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="erp-integrasjon"'}
    if scheme.lower() != "bearer" or not raw.strip():
        raise ApiError(
            401,
            "unauthorized",
            "Send an API token: Authorization: Bearer <token>",
            headers=challenge,
        )
    caller = await api_tokens.authenticate(db, raw.strip())
    if caller is None:
        raise ApiError(
            401,
            "unauthorized",
            "Unknown or revoked API token",
            headers={"WWW-Authenticate": 'Bearer realm="erp-integrasjon", error="invalid_token"'},
        )
    wait = API_LIMITER.acquire(caller.token_hash)
    if wait:
        raise ApiError(
            429,
            "rate_limited",
            "Too many requests with this token",
            headers={"Retry-After": str(API_LIMITER.retry_after(wait))},
        )
    return caller


# -- helpers -----------------------------------------------------------------------------


def encode_cursor(*parts: int) -> str:
    raw = ".".join(str(p) for p in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *limits: int) -> tuple[int, ...] | None:
    """A cursor's numbers, each at most its limit: the largest value its column holds (past
    it, PostgreSQL refuses the query itself: a 500, not our 400)."""
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        values = tuple(int(p) for p in raw.split("."))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_request("cursor", "cursor: not a cursor this API handed out") from None
    if len(values) != len(limits) or any(
        not 0 <= v <= limit for v, limit in zip(values, limits, strict=True)
    ):
        raise bad_request("cursor", "cursor: not a cursor this API handed out")
    return values


def amount(value: Decimal) -> str:
    return format(value.quantize(CENT), "f")


def with_etag(request: Request, body: msgspec.Struct) -> Response:
    """The body with a strong ETag of its bytes; 304 when If-None-Match has that tag."""
    content = msgspec.json.encode(body)
    tag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
    # no-store: an office's books stay out of every cache; callers keep the ETag themselves.
    headers = {"ETag": tag, "Cache-Control": "no-store"}
    wanted = request.headers.get("if-none-match", "")
    if wanted:
        tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
        if "*" in tags or tag in tags:
            return Response(content=b"", status_code=304, headers=headers)
    return Response(content=content, media_type="application/json", headers=headers)


async def visible_client(db: AsyncSession, caller: Caller, client_id: int) -> Client:
    found = await publishing.get_client(db, caller.office_id, client_id)
    if found is None:
        raise not_found()
    return found[0]


def client_out(client: Client, integration: Integration) -> ClientOut:
    assert client.id is not None and integration.id is not None
    health = publishing.health(client, integration)
    return ClientOut(
        id=client.id,
        name=client.name,
        org_number=client.org_number,
        system=integration.system,
        integration_id=integration.id,
        active=client.active,
        last_synced_at=client.synced_at,
        health=Health(status=health.status, message=health.message, failures=health.failures),  # type: ignore[arg-type]
    )


def account_out(account: Account) -> AccountOut:
    return AccountOut(
        number=account.number,
        name=account.name,
        type=account.type,
        is_inactive=account.is_inactive,
        is_bank_account=account.is_bank_account,
        vat_code=account.vat_code,
        saft_code=account.saft_code,
        grouping_code=account.grouping_code,
        grouping_category=account.grouping_category,
        removed_at=account.removed_at,
    )


def change_out(change: DataChange) -> ChangeOut:
    assert change.id is not None
    return ChangeOut(
        id=change.id,
        client_id=change.client_id,
        kind=change.kind,  # type: ignore[arg-type]
        year=change.year,
        month=change.month,
        changed_at=change.changed_at,
    )


def parse_month(field: str, value: str) -> tuple[int, int]:
    match = MONTH.match(value)
    if not match or not 1 <= int(match[2]) <= 12:
        raise bad_request(field, f"{field}: expected a month as YYYY-MM, e.g. 2026-03")
    return int(match[1]), int(match[2])


def parse_day(field: str, value: str) -> date:
    match = DAY.match(value)
    try:
        if not match:
            raise ValueError
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise bad_request(field, f"{field}: expected a date as YYYY-MM-DD") from None


def check_year(field: str, year: int, kept: list[int]) -> None:
    if year not in kept:
        contiguous = len(kept) == kept[-1] - kept[0] + 1
        years = f"{kept[0]}–{kept[-1]}" if contiguous else ", ".join(map(str, kept))
        raise bad_request(field, f"{field}: only the accounting years {years} are kept")


def parse_balances_period(
    month: str | None,
    from_month: str | None,
    to_month: str | None,
    as_of: str | None,
    kept: list[int],
) -> tuple[Period, date | None]:
    """The period the query names, and the day for `date`; 400 naming the field at fault."""
    given = [n for n, v in (("month", month), ("from", from_month), ("date", as_of)) if v]
    if to_month and not from_month:
        raise bad_request("from", "from: a range needs both from and to")
    if len(given) != 1:
        raise bad_request(
            "month", "month: give one of month=YYYY-MM, from=YYYY-MM&to=YYYY-MM, or date"
        )
    if month:
        year, first = parse_month("month", month)
        check_year("month", year, kept)
        return Period(year, first, first), None
    if from_month:
        if not to_month:
            raise bad_request("to", "to: a range needs both from and to")
        year, first = parse_month("from", from_month)
        to_year, last = parse_month("to", to_month)
        check_year("from", year, kept)
        if to_year != year:
            raise bad_request("to", "to: a range must lie within one accounting year")
        if last < first:
            raise bad_request("to", "to: must not be before from")
        return Period(year, first, last), None
    assert as_of is not None
    day = parse_day("date", as_of)
    if day.day != calendar.monthrange(day.year, day.month)[1]:
        raise bad_request("date", "date: balances are kept per month; give a month's last day")
    check_year("date", day.year, kept)
    return Period(day.year, 1, day.month), day


def balance_report_out(client_id: int, report: TrialBalance, as_of: date | None) -> BalanceReport:
    period = report.period
    return BalanceReport(
        client_id=client_id,
        year=period.year,
        from_month=f"{period.year}-{period.first_month:02d}",
        to_month=f"{period.year}-{period.last_month:02d}",
        as_of=as_of,
        lines=[
            BalanceLineOut(
                account_number=row.number,
                account_name=row.name,
                opening=amount(row.opening),
                movement=amount(row.movement),
                closing=amount(row.closing),
            )
            for row in report.rows
        ],
        totals=Totals(
            opening=amount(report.opening),
            movement=amount(report.movement),
            closing=amount(report.closing),
        ),
    )


# -- endpoints ---------------------------------------------------------------------------


class ClientsController(Controller):
    path = "/clients"
    tags = ["Clients"]

    @get("/", responses=LIST_ERRORS, summary="List clients")
    async def list_clients(
        self,
        request: Request,
        db: NamedDependency[AsyncSession],
        caller: NamedDependency[Caller],
        cursor: CursorParam = None,
        limit: Limit = 100,
    ) -> Response[ClientList]:
        """The office's clients with SEND DATA on, in id order, with their sync health."""
        after = decode_cursor(cursor, MAX_DB_INT)
        rows = await publishing.list_clients(
            db, caller.office_id, after_id=after[0] if after else 0, limit=limit + 1
        )
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1][0].id or 0) if len(rows) > limit else None
        return with_etag(
            request,
            ClientList(data=[client_out(c, i) for c, i in page], next_cursor=next_cursor),
        )

    @get("/{client_id:int}", responses=CLIENT_ERRORS, summary="One client")
    async def get_client(
        self,
        request: Request,
        db: NamedDependency[AsyncSession],
        caller: NamedDependency[Caller],
        client_id: FromPath[int],
    ) -> Response[ClientOut]:
        found = await publishing.get_client(db, caller.office_id, client_id)
        if found is None:
            raise not_found()
        return with_etag(request, client_out(*found))

    @get("/{client_id:int}/accounts", responses=CLIENT_ERRORS, summary="Chart of accounts")
    async def accounts(
        self,
        request: Request,
        db: NamedDependency[AsyncSession],
        caller: NamedDependency[Caller],
        client_id: FromPath[int],
        cursor: CursorParam = None,
        limit: Limit = 500,
        include_removed: Annotated[
            bool, QueryParameter(description="Also accounts the ERP no longer has")
        ] = False,
    ) -> Response[AccountList]:
        """The client's chart of accounts in account-number order."""
        client = await visible_client(db, caller, client_id)
        assert client.id is not None
        after = decode_cursor(cursor, MAX_DB_INT, MAX_DB_INT)
        rows = await publishing.list_accounts(
            db,
            client.id,
            after=(after[0], after[1]) if after else None,
            limit=limit + 1,
            include_removed=include_removed,
        )
        page = rows[:limit]
        last = page[-1] if page else None
        next_cursor = (
            encode_cursor(last.number, last.id or 0) if last and len(rows) > limit else None
        )
        return with_etag(
            request, AccountList(data=[account_out(a) for a in page], next_cursor=next_cursor)
        )

    @get("/{client_id:int}/balances", responses=CLIENT_ERRORS, summary="Balances")
    async def balances(
        self,
        request: Request,
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        caller: NamedDependency[Caller],
        client_id: FromPath[int],
        month: Annotated[
            str | None, QueryParameter(description="One month: YYYY-MM", max_length=20)
        ] = None,
        from_month: Annotated[
            str | None,
            QueryParameter(
                name="from", description="First month of a range: YYYY-MM", max_length=20
            ),
        ] = None,
        to_month: Annotated[
            str | None,
            QueryParameter(name="to", description="Last month of a range: YYYY-MM", max_length=20),
        ] = None,
        as_of: Annotated[
            str | None,
            QueryParameter(
                name="date",
                description="Trial balance at a month's last day, YYYY-MM-DD: balance on "
                "1 January, movement since, and balance at the date",
                max_length=20,
            ),
        ] = None,
    ) -> Response[BalanceReport]:
        """The saldobalanse per account (balance in, movement, balance out) with totals,
        for one month (`month`), a range of months within one year (`from` and `to`), or
        the year to a date (`date`). Give exactly one of these."""
        found = await publishing.get_client(db, caller.office_id, client_id)
        if found is None:
            raise not_found()
        client, integration = found
        assert client.id is not None
        if integration_service.takes_files(integration):
            kept = (await saft_history.offer(db, client.id)).years
        else:
            kept = balances.offer(client.synced_at, settings.sync.years).years
        period, day = parse_balances_period(month, from_month, to_month, as_of, kept)
        report = await balances.trial_balance_report(db, client.id, period)
        return with_etag(request, balance_report_out(client.id, report, day))


class ChangesController(Controller):
    path = "/changes"
    tags = ["Changes"]

    @get("/", responses=LIST_ERRORS, summary="Changes since a cursor")
    async def changes(
        self,
        request: Request,
        db: NamedDependency[AsyncSession],
        caller: NamedDependency[Caller],
        cursor: Annotated[
            str | None,
            QueryParameter(
                description="`next_cursor` of the previous call; none to start from the "
                "beginning, `latest` to start from now",
                max_length=200,
            ),
        ] = None,
        limit: Limit = 100,
    ) -> Response[ChangeList]:
        """What changed (which clients, which months) after the cursor, oldest first. Read
        everything once, then poll this with `next_cursor` and re-read only what it names."""
        if cursor == "latest":
            latest = await publishing.latest_change_id(db, caller.office_id)
            return with_etag(
                request, ChangeList(data=[], next_cursor=encode_cursor(latest), has_more=False)
            )
        after = decode_cursor(cursor, MAX_BIG_INT)
        after_id = after[0] if after else 0
        rows = await publishing.list_changes(
            db, caller.office_id, after_id=after_id, limit=limit + 1
        )
        page = rows[:limit]
        last_id = page[-1].id if page else after_id
        return with_etag(
            request,
            ChangeList(
                data=[change_out(c) for c in page],
                next_cursor=encode_cursor(last_id or 0),
                has_more=len(rows) > limit,
            ),
        )
