"""The OAuth 2.0 token endpoint (`POST /OAuth/Token`): client credentials grant.

As PowerOffice documents it: `Authorization: Basic base64(application key:client key)`, a
form body `grant_type=client_credentials`, and the subscription key header (checked by the
pipeline in front, as Azure API Management does). Refusals use RFC 6749's error body
(`error`, `error_description`), as PowerOffice's Authentication API declares it.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs

from simulators.poweroffice.api import Reply
from simulators.poweroffice.state import PowerOfficeState


def _error(status: int, error: str, description: str) -> Reply:
    return Reply(status, {"error": error, "error_description": description})


def token(
    state: PowerOfficeState, authorization: str | None, body: bytes, subscription_key: str
) -> Reply:
    form = parse_qs(body.decode("utf-8", errors="replace"))
    if form.get("grant_type") != ["client_credentials"]:
        return _error(400, "unsupported_grant_type", "Only client_credentials is supported.")
    if not authorization or authorization[:6].lower() != "basic ":
        return _error(401, "invalid_client", "Missing Basic authorization header.")
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return _error(401, "invalid_client", "Malformed Basic authorization header.")
    application_key, _, client_key = decoded.partition(":")
    client = state.client_by_key(client_key) if client_key else None
    if application_key not in state.application_keys or client is None:
        return _error(401, "invalid_client", "Unknown application key or client key.")
    issued = state.issue_token(client, subscription_key)
    return Reply(
        200,
        {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": state.faults.token_lifetime_seconds,
        },
        {"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
