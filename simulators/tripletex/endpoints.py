"""The Tripletex endpoints the simulator serves, as a route table of plain async functions.

Handlers get a `Call` (state, query, authenticated user, renderer) and return a `Reply`;
raising `TripletexError` answers with Tripletex's error envelope.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from simulators.tripletex.errors import (
    ILLEGAL_FILTER,
    PATH_PARAM,
    TripletexError,
    invalid,
    not_found,
    unauthorized,
)
from simulators.tripletex.fields import FieldsError, Later, apply_fields, parse_fields
from simulators.tripletex.model import Account, Company, Employee, EmployeeKey
from simulators.tripletex.render import Renderer, to_json
from simulators.tripletex.state import SimulatorState, UnknownKey

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MAX_COUNT = 100_000


@dataclass(frozen=True)
class Auth:
    key: EmployeeKey
    company: Company  # the company acted for: the key's own, or a client
    employee: Employee  # inside a client: the accountant's proxy employee there
    actual_employee: Employee

    @property
    def as_client(self) -> bool:
        return self.company.id != self.key.company_id


@dataclass
class Call:
    state: SimulatorState
    query: Mapping[str, str]
    render: Renderer
    auth: Auth | None = None
    params: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def user(self) -> Auth:
        assert self.auth is not None, "route declared without authentication"
        return self.auth


@dataclass
class Reply:
    status: int
    body: Any


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    authenticated: bool = True

    def match(self, path: str) -> dict[str, str] | None:
        want, got = self.template.split("/"), path.split("/")
        if len(want) != len(got):
            return None
        params = {}
        for pattern, segment in zip(want, got, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                params[pattern[1:-1]] = segment
            elif pattern != segment:
                return None
        return params


# -- parameters ----------------------------------------------------------------------------


def _int(query: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise invalid(name, f"Verdien '{raw}' er ikke et heltall.") from None


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    start = _int(query, "from", 0) or 0
    count = _int(query, "count", 1000)
    if start < 0:
        raise invalid("from", "Kan ikke være negativ.")
    if count is None or count < 0:
        raise invalid("count", "Kan ikke være negativ.")
    return start, min(count, _MAX_COUNT)


def _bool(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise invalid(name, f"Verdien '{raw}' er ikke true eller false.")


def _date(query: Mapping[str, str], name: str) -> date:
    raw = query.get(name)
    if not raw:
        raise invalid(name, "Kan ikke være null.")
    try:
        if not _ISO_DATE.match(raw):
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise invalid(name, f"Ugyldig dato '{raw}'. Format er yyyy-MM-dd.") from None


def _period(query: Mapping[str, str]) -> tuple[date, date]:
    date_from, date_to = _date(query, "dateFrom"), _date(query, "dateTo")
    if date_from >= date_to:
        raise invalid("dateTo", "Til-dato (eksklusiv) må være etter fra-dato.")
    return date_from, date_to


def _id_list(query: Mapping[str, str], name: str) -> set[int] | None:
    raw = query.get(name)
    if not raw:
        return None
    try:
        return {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise invalid(name, f"Ugyldig liste: '{raw}'.") from None


def path_id(call: Call) -> int:
    raw = call.params.get("id", "")
    if not raw.isdigit():
        raise TripletexError(400, PATH_PARAM, f"Ugyldig id i stien: '{raw}'.")
    return int(raw)


def fields_tree(query: Mapping[str, str]) -> dict[str, Any]:
    try:
        return parse_fields(query.get("fields"))
    except FieldsError as exc:
        raise TripletexError(400, ILLEGAL_FILTER, str(exc)) from None


def single(call: Call, value: Mapping[str, Any], model: str) -> Reply:
    try:
        return Reply(200, {"value": apply_fields(value, fields_tree(call.query), model)})
    except FieldsError as exc:
        raise TripletexError(400, ILLEGAL_FILTER, str(exc)) from None


def listing(call: Call, items: list[Any], model: str) -> Reply:
    tree = fields_tree(call.query)
    start, count = _paging(call.query)
    try:
        values = [apply_fields(item, tree, model) for item in items]
    except FieldsError as exc:
        raise TripletexError(400, ILLEGAL_FILTER, str(exc)) from None
    page = values[start : start + count]
    return Reply(
        200,
        {
            "fullResultSize": len(values),
            "from": start,
            "count": len(page),
            # Over the whole result, not the page: same digest means nothing changed.
            "versionDigest": hashlib.sha256(to_json(values)).hexdigest(),
            "values": page,
        },
    )


# -- endpoints ----------------------------------------------------------------------------


async def create_session(call: Call) -> Reply:
    query, state = call.query, call.state
    for name in ("consumerToken", "employeeToken"):
        if not query.get(name):
            raise invalid(name, "Kan ikke være null.")
    expires = _date(query, "expirationDate")
    if expires < state.today:
        raise invalid("expirationDate", "Utløpsdato kan ikke være tilbake i tid.")
    if query["consumerToken"] not in state.consumer_tokens:
        raise unauthorized("Unknown consumer token.")
    try:
        key = state.key(query["employeeToken"])
    except UnknownKey:
        raise unauthorized("Unknown or revoked employee token.") from None
    session = state.create_session(query["consumerToken"], key.token, expires)
    return single(call, call.render.session_token(session, key.id), "SessionToken")


async def who_am_i(call: Call) -> Reply:
    auth = call.user
    info = call.render.logged_in_user(auth.employee, auth.actual_employee, auth.company)
    return single(call, info, "LoggedInUserInfo")


async def with_login_access(call: Call) -> Reply:
    auth = call.user
    # Acting inside a client, the current company is that client, which has no clients.
    clients = [] if auth.as_client else call.state.clients_of(auth.key.token)
    return listing(call, [call.render.client(c) for c in clients], "Client")


async def accounts(call: Call) -> Reply:
    company, query = call.user.company, call.query
    ids, numbers = _id_list(query, "id"), _id_list(query, "number")
    flag_names = ("isInactive", "isBankAccount", "isApplicableForSupplierInvoice")
    flags = {name: _bool(query, name) for name in (*flag_names, "isBalanceAccount")}
    saft_code = query.get("saftCode") or None
    ledger_type = query.get("ledgerType") or None
    used = company.accounts_in_use()
    items = []
    for account in sorted(company.accounts, key=lambda a: a.number):
        dto = call.render.account(account, account.id in used)
        if ids is not None and account.id not in ids:
            continue
        if numbers is not None and account.number not in numbers:
            continue
        if flags["isBalanceAccount"] is not None and (
            (account.number < 3000) != flags["isBalanceAccount"]
        ):
            continue
        if any(flags[name] is not None and dto[name] != flags[name] for name in flag_names):
            continue
        if saft_code is not None and dto["saftCode"] != saft_code:
            continue
        if ledger_type is not None and dto["ledgerType"] != ledger_type:
            continue
        items.append(dto)
    return listing(call, items, "Account")


async def account(call: Call) -> Reply:
    company, account_id = call.user.company, path_id(call)
    found = company.account_by_id(account_id)
    if found is None:
        raise not_found(f"Account {account_id} does not exist.")
    used = any(p.account_id == account_id for p in company.postings())
    return single(call, call.render.account(found, used), "Account")


async def balance_sheet(call: Call) -> Reply:
    company, query = call.user.company, call.query
    date_from, date_to = _period(query)
    rows = call.state.balance_sheet(
        company.id,
        date_from,
        date_to,
        account_number_from=_int(query, "accountNumberFrom", None),
        account_number_to=_int(query, "accountNumberTo", None),
        include_active_accounts_without_movements=bool(
            _bool(query, "includeActiveAccountsWithoutMovements")
        ),
    )
    in_use = _in_use(company)
    items = [call.render.balance_row(row, in_use(row.account.id)) for row in rows]
    return listing(call, items, "BalanceSheetAccount")


def _in_use(company: Company) -> Callable[[int], Later]:
    """An account's isPostingsExist, found only if shown: finding it walks every posting."""
    used = functools.cache(company.accounts_in_use)
    return lambda account_id: Later(lambda: account_id in used())


async def postings(call: Call) -> Reply:
    company, query = call.user.company, call.query
    date_from, date_to = _period(query)
    account_id = _int(query, "accountId", None)
    number_from = _int(query, "accountNumberFrom", None)
    number_to = _int(query, "accountNumberTo", None)
    by_id = {a.id: a for a in company.accounts}
    items = []
    for voucher in sorted(company.vouchers, key=lambda v: (v.date, v.id)):
        if not date_from <= voucher.date < date_to:
            continue
        for posting in voucher.postings:
            account = by_id[posting.account_id]
            if account_id is not None and account.id != account_id:
                continue
            if number_from is not None and account.number < number_from:
                continue
            if number_to is not None and account.number >= number_to:
                continue
            items.append(call.render.posting(posting, voucher, account))
    return listing(call, items, "Posting")


async def posting(call: Call) -> Reply:
    company, posting_id = call.user.company, path_id(call)
    for voucher in company.vouchers:
        for found in voucher.postings:
            if found.id == posting_id:
                account = company.account_by_id(found.account_id)
                assert account is not None
                return single(call, call.render.posting(found, voucher, account), "Posting")
    raise not_found(f"Posting {posting_id} does not exist.")


def _posting_accounts(call: Call, company: Company) -> dict[int, Account] | None:
    """Accounts to render whole postings with, when the fields filter opens them
    (`postings(*)`); otherwise None, and postings stay refs, which is much cheaper."""
    expand = bool(fields_tree(call.query).get("postings"))
    return {a.id: a for a in company.accounts} if expand else None


async def vouchers(call: Call) -> Reply:
    company, query = call.user.company, call.query
    date_from, date_to = _period(query)
    ids, numbers = _id_list(query, "id"), _id_list(query, "number")
    number_from, number_to = _int(query, "numberFrom", None), _int(query, "numberTo", None)
    # The simulator books no voucher types, so a typeId filter matches nothing.
    type_ids = _id_list(query, "typeId")
    accounts = _posting_accounts(call, company)
    items = []
    for voucher in sorted(company.vouchers, key=lambda v: (v.date, v.id)):
        if not date_from <= voucher.date < date_to or type_ids is not None:
            continue
        if ids is not None and voucher.id not in ids:
            continue
        if numbers is not None and voucher.number not in numbers:
            continue
        if number_from is not None and voucher.number < number_from:
            continue
        if number_to is not None and voucher.number >= number_to:
            continue
        items.append(call.render.voucher(voucher, accounts))
    return listing(call, items, "Voucher")


async def voucher(call: Call) -> Reply:
    company, voucher_id = call.user.company, path_id(call)
    found = next((v for v in company.vouchers if v.id == voucher_id), None)
    if found is None:
        raise not_found(f"Voucher {voucher_id} does not exist.")
    dto = call.render.voucher(found, _posting_accounts(call, company))
    return single(call, dto, "Voucher")


ROUTES: tuple[Route, ...] = (
    Route("PUT", "/token/session/:create", create_session, authenticated=False),
    Route("GET", "/token/session/>whoAmI", who_am_i),
    Route("GET", "/company/>withLoginAccess", with_login_access),
    Route("GET", "/ledger/account", accounts),
    Route("GET", "/ledger/account/{id}", account),
    Route("GET", "/balanceSheet", balance_sheet),
    Route("GET", "/ledger/posting", postings),
    Route("GET", "/ledger/posting/{id}", posting),
    Route("GET", "/ledger/voucher", vouchers),
    Route("GET", "/ledger/voucher/{id}", voucher),
)
