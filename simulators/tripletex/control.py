"""The control API under `/_sim`: what tests, the demo and benchmarks use to steer the world.

    GET|POST /_sim/faults                    Faults' fields and outage_status (POST: partial)
    POST     /_sim/expire-sessions           every session token so far answers 401
    POST     /_sim/grant-client, /_sim/revoke-client
    POST     /_sim/companies/{id}/vouchers   {date?, description?, postings?} → voucher.create
    PUT      /_sim/vouchers/{id}             {postings, description?} → voucher.update
    DELETE   /_sim/vouchers/{id}             → voucher.delete
    POST     /_sim/companies/{id}/accounts   {number, name, isInactive?} → account.create
    PUT      /_sim/accounts/{id}             {name?, isInactive?} → account.update
    DELETE   /_sim/accounts/{id}             → account.delete (422 while it has postings)
    POST     /_sim/subscriptions/{id}/disable  {status?} as Tripletex would on its own
    GET      /_sim/deliveries, /_sim/health

Not Tripletex: plain JSON in and out. State changes refused as invalid answer with Tripletex's
error envelope (422, or 404 for an unknown id), exactly as the state method raised it; amounts
are strings, exact.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from litestar import Request, Response, delete, get, post, put
from litestar.exceptions import NotFoundException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from simulators.tripletex.errors import TripletexError, invalid
from simulators.tripletex.ledger import postings_from_json
from simulators.tripletex.model import Account, Company, Voucher
from simulators.tripletex.render import money, to_json
from simulators.tripletex.state import SimulatorState, UnknownKey

AnyRequest = Request[Any, Any, Any]
Json = dict[str, Any]


def control_error(_: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, TripletexError)
    envelope = exc.envelope(str(uuid.uuid4()))
    return Response(to_json(envelope), status_code=exc.status, media_type="application/json")


async def _json(request: AnyRequest) -> Json:
    """The JSON object in the body; an empty body is an empty object (everything optional)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValidationException(f"Invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationException("Expected a JSON object")
    return data


def _day(raw: Any) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise invalid("date", f"Ugyldig dato '{raw}'. Format er yyyy-MM-dd.") from None


def _text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(name, "Må være en tekst.")
    return value


def _flag(data: dict[str, Any], name: str) -> bool | None:
    value = data.get(name)
    if value is not None and not isinstance(value, bool):
        raise invalid(name, "Må være true eller false.")
    return value


def _voucher(company: Company, voucher: Voucher) -> dict[str, Any]:
    numbers = {a.id: a.number for a in company.accounts}
    return {
        "id": voucher.id,
        "companyId": company.id,
        "number": voucher.number,
        "year": voucher.year,
        "date": voucher.date.isoformat(),
        "description": voucher.description,
        "version": voucher.version,
        "postings": [
            {"id": p.id, "accountNumber": numbers[p.account_id], "amount": str(money(p.amount))}
            for p in voucher.postings
        ],
    }


def _account(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "number": account.number,
        "name": account.name,
        "isInactive": account.is_inactive,
        "version": account.version,
    }


def _faults(state: SimulatorState) -> dict[str, Any]:
    return {**state.faults.to_json(), "outage_status": state.outage_status}


def control_handlers(
    state: SimulatorState, paths: Callable[[str], list[str]]
) -> list[HTTPRouteHandler]:
    @post(paths("/_sim/grant-client"), status_code=201)
    async def grant_client(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        try:
            client = state.grant_new_client(str(data.get("employeeToken", "")))
        except UnknownKey:
            raise NotFoundException("Unknown employee token") from None
        return {
            "id": client.id,
            "name": client.name,
            "organizationNumber": client.organization_number,
        }

    @post(paths("/_sim/revoke-client"), status_code=204)
    async def revoke_client(data: JSONBody[dict[str, Any]]) -> None:
        try:
            state.revoke_client(str(data.get("employeeToken", "")), int(data["companyId"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationException(f"Cannot revoke: {exc!r}") from None

    @get(paths("/_sim/health"))
    async def health() -> dict[str, Any]:
        return {"status": "ok", "today": state.today.isoformat(), "companies": len(state.companies)}

    @get(paths("/_sim/faults"))
    async def get_faults() -> dict[str, Any]:
        return _faults(state)

    @post(paths("/_sim/faults"), status_code=200)
    async def set_faults(request: AnyRequest) -> Json:
        """Faults' field names (and `outage_status`); unspecified settings stay as they are."""
        changes = await _json(request)
        outage = changes.pop("outage_status", state.outage_status)
        if outage is not None and (isinstance(outage, bool) or not isinstance(outage, int)):
            raise ValidationException("outage_status must be an HTTP status or null")
        if changes:
            try:
                state.set_faults(**changes)
            except (TypeError, ValueError) as exc:
                raise ValidationException(str(exc)) from None
        state.outage_status = outage
        return _faults(state)

    @post(paths("/_sim/expire-sessions"), status_code=204)
    async def expire_sessions() -> None:
        state.expire_sessions()

    @post(paths("/_sim/companies/{company_id:int}/vouchers"), status_code=201)
    async def post_voucher(company_id: FromPath[int], request: AnyRequest) -> Json:
        """Body optional: {date, description, postings: [{accountNumber, amount}]}."""
        data = await _json(request)
        postings = postings_from_json(data["postings"]) if "postings" in data else None
        description = _text(data, "description")
        voucher = state.post_voucher(company_id, _day(data.get("date")), postings, description)
        return _voucher(state.companies[company_id], voucher)

    @put(paths("/_sim/vouchers/{voucher_id:int}"))
    async def update_voucher(voucher_id: FromPath[int], request: AnyRequest) -> Json:
        data = await _json(request)
        postings = postings_from_json(data.get("postings"))
        voucher = state.update_voucher(voucher_id, postings, _text(data, "description"))
        return _voucher(state.find_voucher(voucher_id)[0], voucher)

    @delete(paths("/_sim/vouchers/{voucher_id:int}"), status_code=204)
    async def delete_voucher(voucher_id: FromPath[int]) -> None:
        state.delete_voucher(voucher_id)

    @post(paths("/_sim/companies/{company_id:int}/accounts"), status_code=201)
    async def create_account(company_id: FromPath[int], request: AnyRequest) -> Json:
        """Body: {number, name, isInactive?}."""
        data = await _json(request)
        number, name = data.get("number"), _text(data, "name")
        if isinstance(number, bool) or not isinstance(number, int):
            raise invalid("number", "Må være et heltall.")
        if name is None:
            raise invalid("name", "Kan ikke være null.")
        inactive = bool(_flag(data, "isInactive"))
        return _account(state.create_account(company_id, number, name, is_inactive=inactive))

    @put(paths("/_sim/accounts/{account_id:int}"))
    async def update_account(account_id: FromPath[int], request: AnyRequest) -> Json:
        """Body: {name?, isInactive?}."""
        data = await _json(request)
        name, inactive = _text(data, "name"), _flag(data, "isInactive")
        return _account(state.update_account(account_id, name=name, is_inactive=inactive))

    @delete(paths("/_sim/accounts/{account_id:int}"), status_code=204)
    async def delete_account(account_id: FromPath[int]) -> None:
        state.delete_account(account_id)

    @post(paths("/_sim/subscriptions/{subscription_id:int}/disable"), status_code=200)
    async def disable_subscription(
        subscription_id: FromPath[int], request: Request[Any, Any, Any]
    ) -> dict[str, Any]:
        """Body optional: {status}, by default DISABLED_TOO_MANY_ERRORS."""
        status = (await _json(request)).get("status", "DISABLED_TOO_MANY_ERRORS")
        try:
            sub = state.disable_subscription(subscription_id, str(status))
        except ValueError as exc:
            raise ValidationException(str(exc)) from None
        return {"id": sub.id, "status": sub.status}

    @get(paths("/_sim/deliveries"))
    async def deliveries() -> list[dict[str, Any]]:
        return [
            {
                "subscriptionId": d.subscription_id,
                "event": d.event,
                "id": d.object_id,
                "target": d.target,
                "status": d.status,
                "attempts": d.attempts,
                "responseStatus": d.response_status,
                "error": d.error,
            }
            for d in state.deliveries
        ]

    return [
        *(grant_client, revoke_client, health, get_faults, set_faults, expire_sessions),
        *(post_voucher, update_voucher, delete_voucher),
        *(create_account, update_account, delete_account),
        *(disable_subscription, deliveries),
    ]
