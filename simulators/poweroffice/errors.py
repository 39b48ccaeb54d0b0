"""RFC 7807 ProblemDetails, as PowerOffice Go v2 answers every refused API call.

The spec's ProblemDetails schema lists PascalCase names but is open to other properties, and
its examples (like ASP.NET Core on the wire) use RFC 7807's lowercase names: those are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_TYPES = {
    400: "https://tools.ietf.org/html/rfc7231#section-6.5.1",
    401: "https://tools.ietf.org/html/rfc7235#section-3.1",
    403: "https://tools.ietf.org/html/rfc7231#section-6.5.3",
    404: "https://tools.ietf.org/html/rfc7231#section-6.5.4",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc7231#section-6.6.1",
    502: "https://tools.ietf.org/html/rfc7231#section-6.6.3",
    503: "https://tools.ietf.org/html/rfc7231#section-6.6.4",
    504: "https://tools.ietf.org/html/rfc7231#section-6.6.5",
}
PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass
class Problem(Exception):
    status: int
    title: str
    detail: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": _TYPES.get(self.status, "about:blank"),
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        body["instance"] = instance
        return body


def bad_request(detail: str) -> Problem:
    return Problem(400, "Bad Request", detail)


def unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail)


def forbidden(detail: str) -> Problem:
    return Problem(403, "Forbidden", detail)


def not_found(detail: str) -> Problem:
    return Problem(404, "Not Found", detail)


def too_many_requests(retry_after: int) -> Problem:
    detail = f"Rate limit exceeded. Try again in {retry_after} seconds."
    return Problem(429, "Too Many Requests", detail, {"Retry-After": str(retry_after)})
