"""Tripletex's error envelope and the error codes the simulator answers with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DOC_LINK = "https://tripletex.no/v2-docs/"

AUTHENTICATION = 3000  # 401
NOT_FOUND = 6000  # 404
SECURITY = 9000  # 403
ILLEGAL_FILTER = 11000  # 400
BAD_REQUEST = 4000  # 400
VALUE_VALIDATION = 15000  # 422
INTERNAL = 1000  # 500


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
