"""Tripletex's webhook endpoints: `/event` (what one can subscribe to) and
`/event/subscription` (subscriptions of the company in the Basic-auth username)."""

from __future__ import annotations

import json
from typing import Any

from simulators.tripletex.endpoints import (
    Call,
    Reply,
    Route,
    fields_tree,
    listing,
    path_id,
    single,
)
from simulators.tripletex.errors import (
    ILLEGAL_FILTER,
    INVALID_JSON,
    MAPPING,
    TripletexError,
    invalid,
)
from simulators.tripletex.fields import FieldsError, apply_fields
from simulators.tripletex.webhooks import EVENTS

# Subscription properties one may write, and the attribute each one sets.
_WRITABLE = {
    "event": "event",
    "targetUrl": "target_url",
    "fields": "fields",
    "status": "status",
    "authHeaderName": "auth_header_name",
    "authHeaderValue": "auth_header_value",
    "hmacSharedSecret": "hmac_shared_secret",
}
_READ_ONLY = {"id", "version", "changes", "url"}  # accepted in a body, and ignored


def _body(call: Call) -> tuple[dict[str, Any], int | None]:
    """The subscription settings in the JSON body, and the `version` it claims to change."""
    try:
        data = json.loads(call.body or b"null")
    except ValueError as exc:
        raise TripletexError(422, INVALID_JSON, "Ugyldig JSON.", str(exc)) from None
    if not isinstance(data, dict):
        raise TripletexError(422, INVALID_JSON, "Ugyldig JSON.", "Expected a Subscription object.")
    for name in data:
        if name not in _WRITABLE and name not in _READ_ONLY:
            message = f"Feltet '{name}' finnes ikke i modellen Subscription."
            problem = [{"field": name, "message": message}]
            raise TripletexError(422, MAPPING, "Feil i forespørselen.", message, problem)
    settings = {}
    for name, attribute in _WRITABLE.items():
        if name in data:
            if data[name] is not None and not isinstance(data[name], str):
                raise invalid(name, "Må være en tekst.")
            settings[attribute] = data[name]
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise invalid("version", "Må være et heltall.")
    return settings, version


async def events(call: Call) -> Reply:
    tree = fields_tree(call.query)
    try:
        value = {
            name: apply_fields({"description": text}, tree, "EventInfoDescription")
            for name, text in EVENTS.items()
        }
    except FieldsError as exc:
        raise TripletexError(400, ILLEGAL_FILTER, str(exc)) from None
    return Reply(200, {"value": value})


async def subscriptions(call: Call) -> Reply:
    subs = call.state.subscriptions_of(call.user.company.id)
    return listing(call, [call.render.subscription(s) for s in subs], "Subscription")


async def create_subscription(call: Call) -> Reply:
    settings, _ = _body(call)
    for name, attribute in (("event", "event"), ("targetUrl", "target_url")):
        if not settings.get(attribute):
            raise invalid(name, "Kan ikke være null.")
    if settings.get("status") is None:
        settings.pop("status", None)
    sub = call.state.subscribe(
        call.user.company.id,
        settings.pop("event"),
        settings.pop("target_url"),
        employee_token=call.user.key.token,
        api_base=call.render.base_url,
        **settings,
    )
    return Reply(201, single(call, call.render.subscription(sub), "Subscription").body)


async def subscription(call: Call) -> Reply:
    sub = call.state.subscription(path_id(call), call.user.company.id)
    return single(call, call.render.subscription(sub), "Subscription")


async def update_subscription(call: Call) -> Reply:
    settings, version = _body(call)
    for attribute in ("event", "target_url", "status"):  # required ones: null means unchanged
        if settings.get(attribute) is None:
            settings.pop(attribute, None)
    sub = call.state.update_subscription(
        path_id(call), company_id=call.user.company.id, version=version, **settings
    )
    return single(call, call.render.subscription(sub), "Subscription")


async def delete_subscription(call: Call) -> Reply:
    call.state.delete_subscription(path_id(call), call.user.company.id)
    return Reply(204, None)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/event", events),
    Route("GET", "/event/subscription", subscriptions),
    Route("POST", "/event/subscription", create_subscription),
    Route("GET", "/event/subscription/{id}", subscription),
    Route("PUT", "/event/subscription/{id}", update_subscription),
    Route("DELETE", "/event/subscription/{id}", delete_subscription),
)
