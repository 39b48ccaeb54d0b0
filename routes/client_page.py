"""A client's page: its saldobalanse for a chosen period, chart of accounts and sync history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qsl, urlencode

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Response, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Account, Client, Integration, SyncRun
from routes.flash import take_flash
from routes.integrations import owned_integration
from routes.params import ID_GUARDS
from services import balances
from services import clients as client_service
from services import integrations as integration_service
from services.auth import CurrentUser
from services.saft import history as saft_history
from services.settings import Settings
from web.guards import READER
from web.templating import OSLO, local_time

HISTORY_LENGTH = 20
TABLE_ID = "trial-balance"
KINDS = {"full": "Full", "incremental": "Endringer"}
TRIGGERS = {
    "activation": "Aktivering",
    "schedule": "Tidsplan",
    "webhook": "Varsel fra systemet",
    "poll": "Jevnlig sjekk",
    "manual": "Manuell",
    "nightly": "Nattlig",
}
# A failed run's error as the accountant reads it: stored as "<ErpError class>: <detail>"
# in the system's own (English) words, which stay in the log and the API.
ERRORS = {
    "AccessDenied": "Ingen tilgang til klienten i regnskapssystemet",
    "KeyRejected": "Nøkkelen ble avvist av regnskapssystemet",
    "RateLimited": "Regnskapssystemet ba oss vente (for mange forespørsler)",
    "ErpUnavailable": "Regnskapssystemet svarte ikke som det skulle",
    "ErpError": "Regnskapssystemet svarte med en feil",
    "interrupted": "Avbrutt: prosessen stoppet før synkroniseringen var ferdig",
}
RESULTS = {"ok": "OK", "failed": "Feilet", "running": "Pågår"}
ACCOUNT_TYPES = {
    "ASSETS": "Eiendeler",
    "EQUITY": "Egenkapital",
    "LIABILITIES": "Gjeld",
    "OPERATING_REVENUES": "Driftsinntekter",
    "OPERATING_EXPENSES": "Driftskostnader",
    "INVESTMENT_INCOME": "Finansinntekter",
    "COST_OF_CAPITAL": "Finanskostnader",
    "TAX_ON_ORDINARY_ACTIVITIES": "Skatt på ordinært resultat",
    "EXTRAORDINARY_INCOME": "Ekstraordinære inntekter",
    "EXTRAORDINARY_COST": "Ekstraordinære kostnader",
    "TAX_ON_EXTRAORDINARY_ACTIVITIES": "Skatt på ekstraordinært resultat",
    "ANNUAL_RESULT": "Årsresultat",
    "TRANSFERS_AND_ALLOCATIONS": "Overføringer og disponeringer",
}


class ClientPageController(Controller):
    path = "/integrasjoner/{integration_id:int}/klienter/{client_id:int}/oversikt"
    guards = ID_GUARDS
    opt = READER
    dependencies = {"integration": Provide(owned_integration)}

    @get("/")
    async def page(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        settings: NamedDependency[Settings],
        integration: NamedDependency[Integration],
        client_id: FromPath[int],
        aar: FromQuery[str | None] = None,
        fra: FromQuery[str | None] = None,
        til: FromQuery[str | None] = None,
        liste: FromQuery[str | None] = None,
        sammenlign: FromQuery[str | None] = None,
    ) -> Template:
        client = await owned_client(db, integration, client_id)
        imported = integration_service.takes_files(integration)
        balance = await balance_context(
            db, settings, client, aar, fra, til, imported=imported, compare=sammenlign
        )
        status = 400 if balance["period_error"] else 200
        if request.htmx and request.htmx.target == TABLE_ID:
            # The period form swaps only the table. A refused period answers 422, as the
            # app's other forms do, because htmx (see base.html) swaps no 400 into the page.
            # The page's question for news goes with it: new figures then keep this period.
            return Template(
                "partials/trial_balance_swap.html",
                context={
                    **balance,
                    "live_url": None if imported else _live_url(client, balance),
                },
                status_code=422 if status == 400 else 200,
            )
        context = await page_context(
            db,
            settings,
            user,
            integration,
            client,
            balance,
            imported=imported,
            back=_back_to(integration, liste),
            live_url=None if imported else _live_url(client, balance),
            **take_flash(request),
        )
        return Template("pages/client.html", context=context, status_code=status)

    @get("/nytt")
    async def news(
        self,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        settings: NamedDependency[Settings],
        integration: NamedDependency[Integration],
        client_id: FromPath[int],
        siden: FromQuery[str] = "",
        aar: FromQuery[str | None] = None,
        fra: FromQuery[str | None] = None,
        til: FromQuery[str | None] = None,
        sammenlign: FromQuery[str | None] = None,
    ) -> Response:
        """Asked every few seconds by the open page: nothing (204) while the client's data
        and status are as the page shows them; else the parts that changed, in place."""
        client = await owned_client(db, integration, client_id)
        if integration_service.takes_files(integration) or _live_token(client) == siden:
            return Response(b"", status_code=204)
        if siden.startswith(NEVER_SYNCED) and client.synced_at is not None:
            # The first data: the page gets its saldobalanse section, so it loads anew.
            return Response(b"", status_code=204, headers={"HX-Refresh": "true"})
        balance = await balance_context(db, settings, client, aar, fra, til, compare=sammenlign)
        fresh = siden.split("|", 1)[0] != _moment(client.synced_at)
        context = await page_context(
            db,
            settings,
            user,
            integration,
            client,
            balance,
            live_url=_live_url(client, balance),
            changed=True,
            news=f"Nye tall hentet {local_time(client.synced_at)}." if fresh else None,
        )
        return Template("partials/client_live.html", context=context)


NEVER_SYNCED = "-|"  # the live token of a client without data yet
COMPARE_ON = {"1", "on", "true", "ja"}  # sammenlign: the form's ticked checkbox sends 1


def _moment(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "-"


def _live_token(client: Client) -> str:
    """What the open page shows of the client's state: it asks again until this changes."""
    return f"{_moment(client.synced_at)}|{client.sync_status}|{client.progress_done}"


def _live_url(client: Client, balance: dict[str, object]) -> str:
    """The page's question, with the period it shows (kept when new figures arrive)."""
    params: dict[str, object] = {"siden": _live_token(client)}
    report = balance.get("report")
    if report is not None:
        period = report.period  # type: ignore[attr-defined]
        params |= {"aar": period.year, "fra": period.first_month, "til": period.last_month}
        if balance.get("compare"):
            params["sammenlign"] = 1
    base = f"/integrasjoner/{client.integration_id}/klienter/{client.id}/oversikt/nytt"
    return f"{base}?{urlencode(params)}"


def _back_to(integration: Integration, table: str | None) -> str:
    """The client table as the accountant left it: its search, filter and sorting, read
    back through ClientQuery (nothing else from the URL reaches the link)."""
    base = f"/integrasjoner/{integration.id}"
    if not table:
        return base
    values = dict(parse_qsl(table[:500]))
    query = client_service.ClientQuery.parse(
        values.get("q"), values.get("sort"), 0, values.get("status")
    )
    params = query.params()
    return f"{base}?{urlencode(params)}" if params != {"sort": "navn"} else base


async def owned_client(db: AsyncSession, integration: Integration, client_id: int) -> Client:
    """The client in the URL if it belongs to the (already office-checked) integration."""
    assert integration.id is not None
    client = await client_service.get_client(db, integration.id, client_id)
    if client is None:
        raise NotFoundException()
    return client


async def page_context(
    db: AsyncSession,
    settings: Settings,
    user: CurrentUser,
    integration: Integration,
    client: Client,
    balance: dict[str, object] | None = None,
    *,
    imported: bool = False,
    **extra: object,
) -> dict[str, object]:
    """Everything pages/client.html shows; `balance` None: the default period. `imported`:
    the client's data arrives as files, whose imports and findings show instead of syncs."""
    assert client.id is not None
    if balance is None:
        balance = await balance_context(db, settings, client, None, None, None)
    accounts = await balances.chart_of_accounts(db, client.id)
    runs = [] if imported else await balances.sync_history(db, client.id, HISTORY_LENGTH)
    imports = await saft_history.imports_of_client(db, client.id) if imported else []
    latest = await saft_history.latest_stored(db, client.id) if imported else None
    return {
        **balance,
        "user": user,
        "integration": integration,
        "accounts": [AccountRow.of(a) for a in accounts],
        "history": [HistoryRow.of(run) for run in runs],
        "history_length": HISTORY_LENGTH,
        "demo_notice": None,
        "imported": imported,
        "imports": imports,
        "latest_import": latest,
        "findings": await saft_history.findings_of(db, latest.id or 0) if latest else [],
        "finding_total": await saft_history.finding_count(db, latest.id or 0) if latest else 0,
        **extra,
    }


async def balance_context(
    db: AsyncSession,
    settings: Settings,
    client: Client,
    year: str | None,
    first_month: str | None,
    last_month: str | None,
    *,
    imported: bool = False,
    compare: str | None = None,
) -> dict[str, object]:
    """The saldobalanse section: the form's choices, the table or what is wrong. `compare`
    (the form's sammenlign, ticked) adds the same months of the year before beside the
    period, when that year is stored."""
    assert client.id is not None
    context: dict[str, object] = {
        "client": client,
        "url": f"/integrasjoner/{client.integration_id}/klienter/{client.id}/oversikt",
        "table_id": TABLE_ID,
        "months": list(enumerate(balances.MONTHS, start=1)),
        "kr": balances.format_amount,
        "in_words": balances.result_in_words,
        "report": None,
        "period_error": None,
        "compare": (compare or "").strip().lower() in COMPARE_ON,
    }
    if client.synced_at is None:
        return {**context, "years": [], "period": None}  # the empty state: nothing synced yet
    if imported:
        offer = await saft_history.offer(db, client.id)
    else:
        offer = balances.offer(client.synced_at, settings.sync.years)
    years, default = offer.years, offer.default
    try:
        period = balances.parse_period(year, first_month, last_month, years=years, default=default)
    except balances.PeriodError as exc:
        # The form keeps what could be read, so the accountant corrects only the mistake.
        shown = balances.Period(
            _choice(year, years, default.year),
            _choice(first_month, range(1, 13), default.first_month),
            _choice(last_month, range(1, 13), default.last_month),
        )
        return {**context, "years": years, "period": shown, "period_error": exc.message}
    report = await balances.trial_balance_report(db, client.id, period)
    covered_from = (
        await saft_history.first_month_covered(db, client.id, period.year) if imported else None
    )
    previous = previous_missing = previous_covered_from = None
    if context["compare"]:
        before = balances.previous_period(period)
        if before.year in years:
            previous = await balances.trial_balance_report(db, client.id, before)
            if imported:
                previous_covered_from = await saft_history.first_month_covered(
                    db, client.id, before.year
                )
        else:
            previous_missing = before.year
    return {
        **context,
        "years": years,
        "period": period,
        "report": report,
        "structure": balances.structure(report, previous),
        "previous_report": previous,
        "previous_missing": previous_missing,
        "imported": imported,
        "covered_from": covered_from,
        "previous_covered_from": previous_covered_from,
    }


def _choice(raw: str | None, allowed: object, fallback: int) -> int:
    text = (raw or "").strip()
    if text.isascii() and text.isdigit() and int(text) in allowed:  # type: ignore[operator]
        return int(text)
    return fallback


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class AccountRow:
    number: int
    name: str
    type: str
    vat_code: str
    is_bank_account: bool
    is_inactive: bool
    removed: bool
    grouping: str  # SAF-T 1.30's GroupingCategory and GroupingCode

    @classmethod
    def of(cls, account: Account) -> AccountRow:
        return cls(
            number=account.number,
            name=account.name,
            type=ACCOUNT_TYPES.get(account.type, account.type),
            vat_code=account.vat_code or "",
            is_bank_account=account.is_bank_account,
            is_inactive=account.is_inactive,
            removed=account.removed_at is not None,
            grouping=" ".join(filter(None, (account.grouping_category, account.grouping_code))),
        )


@dataclass(frozen=True)
class HistoryRow:
    started: str
    kind: str
    trigger: str
    requests: str
    periods: int
    duration: str
    result: str
    result_class: str
    error: str | None

    @classmethod
    def of(cls, run: SyncRun) -> HistoryRow:
        requests = str(run.requests)
        if run.retries > 0:
            requests += f" ({run.retries} nye forsøk)"
        duration = ""
        if run.finished_at is not None:
            seconds = (_aware(run.finished_at) - _aware(run.started_at)).total_seconds()
            duration = format_duration(Decimal(str(max(seconds, 0.0))))
        return cls(
            started=_aware(run.started_at).astimezone(OSLO).strftime("%d.%m.%Y kl. %H:%M:%S"),
            kind=KINDS.get(run.kind, run.kind),
            trigger=TRIGGERS.get(run.trigger, run.trigger),
            requests=requests,
            periods=run.periods,
            duration=duration,
            result=RESULTS.get(run.result, run.result),
            result_class=run.result if run.result in RESULTS else "",
            error=_error_text(run.error) if run.result == "failed" else None,
        )


def _error_text(error: str | None) -> str:
    kind = (error or "").split(":", 1)[0].strip()
    return ERRORS.get(kind, "Synkroniseringen feilet")


def format_duration(seconds: Decimal) -> str:
    """1.37 → '1,4 s'; 125 → '2 min 5 s'."""
    if seconds < 60:
        return f"{seconds.quantize(Decimal('0.1'))} s".replace(".", ",")
    whole = int(seconds)
    return f"{whole // 60} min {whole % 60} s"
