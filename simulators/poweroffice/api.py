"""The v2 endpoints the simulator answers, as a route table of plain handlers.

Paths match case-insensitively, as Go's ASP.NET routing does. Lists are paged by the
ResourceParameters query (PageNumber from 1, PageSize up to MaxPageSize) and ordered
stably (accounts by AccountNo, transactions by Id); an empty page answers 204 No Content,
which the spec documents for these lists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from simulators.poweroffice.errors import Problem, bad_request, forbidden
from simulators.poweroffice.model import Client
from simulators.poweroffice.queries import Query
from simulators.poweroffice.render import (
    account_dto,
    integration_dto,
    timestamp,
    transaction_dto,
    trial_balance_dto,
)
from simulators.poweroffice.state import PowerOfficeState, Refused


@dataclass
class Call:
    state: PowerOfficeState
    query: Query
    body: bytes
    site: str  # the simulator's own base URL (scheme, host and mount prefix)
    client: Client | None = None  # the bearer token's client, for authenticated routes


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # the spec's path
    handler: Callable[[Call], Reply]
    bearer: bool = True  # needs an access token
    # A client that has withdrawn the integration gets 403 here; ClientIntegrationInformation
    # still answers, since it exists to explain such a 403.
    needs_access: bool = True


def _json_object(call: Call) -> dict[str, Any]:
    try:
        data = json.loads(call.body or b"null")
    except ValueError:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.")
    return data


def _listing(rows: list[Any], call: Call) -> Reply:
    page = call.query.page().cut(rows)
    return Reply(200, page) if page else Reply(204)


def initiate(call: Call) -> Reply:
    data = _json_object(call)
    application_key = data.get("ApplicationKey")
    if not isinstance(application_key, str) or application_key not in call.state.application_keys:
        raise bad_request("Unknown ApplicationKey.")
    redirect_uri = data.get("RedirectUri")
    parts = urlsplit(redirect_uri) if isinstance(redirect_uri, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise bad_request("RedirectUri must be an absolute http(s) URI.")
    org_no = data.get("ClientOrganizationNo")
    if org_no is not None and not isinstance(org_no, str):
        raise bad_request("ClientOrganizationNo must be a string.")
    session = call.state.initiate_onboarding(application_key, redirect_uri, org_no or None)
    return Reply(
        200,
        {
            "TemporaryUrl": f"{call.site}/ApiAuthV2?token={session.token}",
            "ValidUntilDateTimeOffset": timestamp(session.valid_until),
        },
    )


def finalize(call: Call) -> Reply:
    token = _json_object(call).get("OnboardingToken")
    if not isinstance(token, str) or not token:
        raise bad_request("OnboardingToken is required.")
    try:
        grant, clients = call.state.finalize(token)
    except Refused as exc:
        raise bad_request(str(exc)) from None
    return Reply(
        200,
        {
            "OnboardedClientsInformation": [
                {
                    "ClientKey": client.client_key,
                    "ClientName": client.name,
                    "ClientOrganizationNumber": client.org_no,
                }
                for client in clients
            ],
            "UserEmail": grant.user_email,
        },
    )


def general_ledger_accounts(call: Call) -> Reply:
    client = _client(call)
    changed_after = call.query.moment("lastChangedDateTimeOffsetGreaterThan")
    wanted = call.query.account_filter()
    rows = [
        account_dto(account)
        for account in sorted(client.accounts.values(), key=lambda a: a.account_no)
        if wanted(account.account_no)
        and (changed_after is None or account.last_changed > changed_after)
    ]
    return _listing(rows, call)


def trial_balance(call: Call) -> Reply:
    client = _client(call)
    day = call.query.day("date", required=True)
    assert day is not None
    wanted = call.query.account_filter()
    hide_zero = call.query.flag("hideAccountsWithZeroBalance")
    sums = call.state.trial_balance(client, day)
    rows = [
        trial_balance_dto(client.accounts[number], balance)
        for number, balance in sorted(sums.items())
        if wanted(number) and not (hide_zero and balance == 0)
    ]
    return _listing(rows, call)


def account_transactions(call: Call) -> Reply:
    client = _client(call)
    first = call.query.day("fromDate", required=True)
    last = call.query.day("toDate", required=True)
    assert first is not None and last is not None
    if first > last:
        raise bad_request("fromDate must not be after toDate.")
    created_after = call.query.moment("createdDateTimeOffsetGreaterThan")
    changed_after = call.query.moment("lastChangedDateTimeOffsetGreaterThan")
    wanted = call.query.account_filter()
    rows = [
        transaction_dto(client, voucher, line)
        for voucher, line in call.state.transactions(client)
        if _within(voucher.posting_date, first, last)
        and wanted(line.account_no)
        and (created_after is None or voucher.created > created_after)
        and (changed_after is None or voucher.last_changed > changed_after)
    ]
    return _listing(rows, call)


def client_integration_information(call: Call) -> Reply:
    return Reply(200, integration_dto(_client(call)))


def _within(day: date, first: date, last: date) -> bool:
    return first <= day <= last


def _client(call: Call) -> Client:
    assert call.client is not None  # the pipeline authenticates before any bearer route
    return call.client


def check_access(route: Route, client: Client) -> None:
    if route.needs_access and client.access_withdrawn:
        raise forbidden(
            "The client has deactivated this integration. A user with administrator rights "
            "on the client can activate it again in PowerOffice Go under "
            "Innstillinger → Integrasjoner (Settings → Extensions)."
        )


ROUTES: tuple[Route, ...] = (
    Route("POST", "/Onboarding/Initiate", initiate, bearer=False),
    Route("POST", "/Onboarding/Finalize", finalize, bearer=False),
    Route("GET", "/GeneralLedgerAccounts", general_ledger_accounts),
    Route("GET", "/TrialBalance", trial_balance),
    Route("GET", "/AccountTransactions", account_transactions),
    Route("GET", "/ClientIntegrationInformation", client_integration_information,
          needs_access=False),
)  # fmt: skip


def resolve(method: str, path: str) -> Route:
    """The route for a path under /v2 (404 unknown, 405 other method)."""
    wanted = "/" + path.strip("/").lower()
    same_path = [r for r in ROUTES if r.template.lower() == wanted]
    for candidate in same_path:
        if candidate.method == method:
            return candidate
    if same_path:
        raise Problem(405, "Method Not Allowed", f"{method} is not allowed on {path}.")
    raise Problem(404, "Not Found", f"No endpoint at {path}.")
