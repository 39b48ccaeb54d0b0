"""Tripletex's error envelope and the error codes the simulator answers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DOC_LINK = "https://tripletex.no/v2-docs/"

AUTHENTICATION = 3000  # 401
NOT_FOUND = 6000  # 404
REVISION = 8000  # 409: PUT with an outdated `version`
SECURITY = 9000  # 403
ILLEGAL_FILTER = 11000  # 400
PATH_PARAM = 12000  # 400
BAD_REQUEST = 4000  # 400
VALUE_VALIDATION = 15000  # 422
MAPPING = 16000  # 422: a property the model does not have
INVALID_JSON = 22000  # 422
INTERNAL = 1000  # 500
# The spec lists no code under 429 (nor under 502–504); the generic 1000 is the one a client
# that wrongly keys on `code` would treat as transient, never as "no access" (9000).
RATE_LIMITED = INTERNAL


@dataclass
class TripletexError(Exception):
    status: int
    code: int
    message: str
    developer_message: str = ""
    validation_messages: list[dict[str, str]] = field(default_factory=list)

    def envelope(self, request_id: str) -> dict[str, Any]:
        # validationMessages is [] rather than null: the spec declares an array and no
        # nullable fields, and clients treat both the same.
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "link": DOC_LINK,
            "developerMessage": self.developer_message or self.message,
            "validationMessages": self.validation_messages,
            "requestId": request_id,
        }


def unauthorized(developer_message: str) -> TripletexError:
    return TripletexError(401, AUTHENTICATION, "Unauthorized", developer_message)


def forbidden(developer_message: str) -> TripletexError:
    message = "You do not have access to this resource."
    return TripletexError(403, SECURITY, message, developer_message)


def not_found(developer_message: str) -> TripletexError:
    return TripletexError(404, NOT_FOUND, "Object not found", developer_message)


def invalid(field_name: str, message: str) -> TripletexError:
    return TripletexError(
        422,
        VALUE_VALIDATION,
        "Validering feilet.",
        f"{field_name}: {message}",
        [{"field": field_name, "message": message}],
    )
