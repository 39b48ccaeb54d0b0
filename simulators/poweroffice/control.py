"""The control API under `/_sim`: what tests, the demo and benchmarks use to steer the world.

    GET      /_sim/health, /_sim/clients
    POST     /_sim/clients/{id}/vouchers              {date?, description?, lines?} → 201
    PATCH    /_sim/clients/{id}/vouchers/{voucherNo}  {description}: LastChanged moves
    PUT      /_sim/clients/{id}/accounts/{accountNo}  {name}: create or rename
    POST     /_sim/clients/{id}/withdraw, /restore    the client deactivates / re-activates us
    GET|POST /_sim/faults                             Faults' fields (POST: partial)
    POST     /_sim/expire-tokens                      every access token so far answers 401
    POST     /_sim/clock/advance                      {seconds}: the wall clock moves forward

Not PowerOffice: plain JSON. `lines` are [{"AccountNo": 1920, "Amount": "125.50"}, ...]
(amounts as strings or JSON numbers, read exactly); refusals are ProblemDetails (400).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from litestar import Request, Response, get, patch, post, put
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from simulators.poweroffice.errors import PROBLEM_MEDIA_TYPE, Problem, bad_request
from simulators.poweroffice.model import Client, Voucher
from simulators.poweroffice.render import amount, timestamp, to_json
from simulators.poweroffice.state import PowerOfficeState, Refused

AnyRequest = Request[Any, Any, Any]
Json = dict[str, Any]
DEFAULT_SALE: list[tuple[int, Decimal]] = [
    (1500, Decimal("1250.00")),
    (3000, Decimal("-1000.00")),
    (2700, Decimal("-250.00")),
]


def problem_response(request: AnyRequest, exc: Exception) -> Response[bytes]:
    problem = exc if isinstance(exc, Problem) else bad_request(str(exc))
    body = to_json(problem.body(request.url.path))
    return Response(body, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE)


async def _json(request: AnyRequest) -> Json:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_float=Decimal)
    except ValueError as exc:
        raise bad_request(f"Invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise bad_request("Expected a JSON object")
    return data


def _lines(raw: Any) -> list[tuple[int, Decimal]]:
    if not isinstance(raw, list):
        raise bad_request("lines must be a list of {AccountNo, Amount}")
    lines = []
    for item in raw:
        try:
            number, value = item["AccountNo"], item["Amount"]
            if isinstance(number, bool) or not isinstance(number, int):
                raise TypeError("AccountNo")
            if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
                raise TypeError("Amount")
            lines.append((number, Decimal(str(value))))
        except (KeyError, TypeError, InvalidOperation) as exc:
            raise bad_request(f"Bad voucher line {item!r}: {exc}") from None
    return lines


def _voucher(client: Client, voucher: Voucher) -> Json:
    return {
        "ClientId": client.id,
        "VoucherId": voucher.id,
        "VoucherNo": voucher.voucher_no,
        "PostingDate": voucher.posting_date.isoformat(),
        "Description": voucher.description,
        "CreatedDateTimeOffset": timestamp(voucher.created),
        "LastChangedDateTimeOffset": timestamp(voucher.last_changed),
        "Lines": [
            {"Id": line.id, "AccountNo": line.account_no, "Amount": str(amount(line.amount))}
            for line in voucher.lines
        ],
    }


def _client(client: Client) -> Json:
    return {
        "Id": client.id,
        "Name": client.name,
        "OrganizationNumber": client.org_no,
        "ClientKey": client.client_key,
        "AccessWithdrawn": client.access_withdrawn,
    }


def control_handlers(
    state: PowerOfficeState, paths: Callable[[str], list[str]]
) -> list[HTTPRouteHandler]:
    @get(paths("/_sim/health"))
    async def health() -> Json:
        return {"status": "ok", "now": timestamp(state.clock.now()), "clients": len(state.clients)}

    @get(paths("/_sim/clients"))
    async def clients() -> list[Json]:
        return [_client(c) for c in state.clients.values()]

    @post(paths("/_sim/clients/{client_id:int}/vouchers"), status_code=201)
    async def post_voucher(client_id: FromPath[int], request: AnyRequest) -> Response[bytes]:
        data = await _json(request)
        lines = _lines(data["lines"]) if "lines" in data else DEFAULT_SALE
        raw_date = data.get("date")
        try:
            day = date.fromisoformat(raw_date) if isinstance(raw_date, str) else None
        except ValueError:
            raise bad_request(f"Bad date {raw_date!r}") from None
        description = str(data.get("description") or "Bilag fra simulatoren")
        voucher = state.post_voucher(client_id, lines, day, description)
        body = to_json(_voucher(state.client(client_id), voucher))
        return Response(body, status_code=201, media_type="application/json")

    @patch(paths("/_sim/clients/{client_id:int}/vouchers/{voucher_no:int}"))
    async def edit_voucher(
        client_id: FromPath[int], voucher_no: FromPath[int], request: AnyRequest
    ) -> Response[bytes]:
        text = str((await _json(request)).get("description") or "")
        voucher = state.edit_voucher_description(client_id, voucher_no, text)
        return Response(to_json(_voucher(state.client(client_id), voucher)))

    @put(paths("/_sim/clients/{client_id:int}/accounts/{account_no:int}"))
    async def save_account(
        client_id: FromPath[int], account_no: FromPath[int], request: AnyRequest
    ) -> Json:
        name = (await _json(request)).get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_request("name is required")
        account = state.save_account(client_id, account_no, name)
        return {"Id": account.id, "AccountNo": account.account_no, "Name": account.name}

    @post(paths("/_sim/clients/{client_id:int}/withdraw"), status_code=200)
    async def withdraw(client_id: FromPath[int]) -> Json:
        return _client(state.set_access(client_id, withdrawn=True))

    @post(paths("/_sim/clients/{client_id:int}/restore"), status_code=200)
    async def restore(client_id: FromPath[int]) -> Json:
        return _client(state.set_access(client_id, withdrawn=False))

    @get(paths("/_sim/faults"))
    async def get_faults() -> Json:
        return state.faults.to_json()

    @post(paths("/_sim/faults"), status_code=200)
    async def set_faults(request: AnyRequest) -> Json:
        """Faults' field names; settings not given stay as they are."""
        changes = json.loads(await request.body() or b"{}")
        if not isinstance(changes, dict):
            raise bad_request("Expected a JSON object")
        try:
            return state.set_faults(**changes).to_json()
        except (TypeError, ValueError) as exc:
            raise bad_request(str(exc)) from None

    @post(paths("/_sim/expire-tokens"), status_code=204)
    async def expire_tokens() -> None:
        state.expire_tokens()

    @post(paths("/_sim/clock/advance"), status_code=200)
    async def advance_clock(request: AnyRequest) -> Json:
        seconds = (await _json(request)).get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | Decimal):
            raise bad_request("seconds must be a number")
        try:
            return {"now": timestamp(state.clock.advance(float(seconds)))}
        except ValueError as exc:
            raise bad_request(str(exc)) from None

    return [
        health, clients, post_voucher, edit_voucher, save_account, withdraw, restore,
        get_faults, set_faults, expire_tokens, advance_clock,
    ]  # fmt: skip


__all__ = ["Problem", "Refused", "control_handlers", "problem_response"]
