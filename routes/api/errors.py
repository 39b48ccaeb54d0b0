"""API errors: one JSON shape (`Problem`) and the statuses the schema documents."""

from __future__ import annotations

import logging

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from routes.api.schemas import Problem

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A client's mistake (400, 401, 404, 429): answered as a Problem, logged without a
    stack trace (the app lists it in its logging config's `disable_stack_trace`)."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.problem = Problem(status=status, error=error, message=message, field=field)
        self.headers = headers or {}


def bad_request(field: str, message: str) -> ApiError:
    return ApiError(400, "bad_request", message, field=field)


def not_found(what: str = "client") -> ApiError:
    # The same answer whether it does not exist or belongs to another office.
    return ApiError(404, "not_found", f"No such {what}")


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return Response(
        content=msgspec.json.encode(problem),
        status_code=problem.status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def handle_api_error(_request: Request, exc: ApiError) -> Response:
    return problem_response(exc.problem, exc.headers)


def handle_validation(_request: Request, exc: ValidationException) -> Response:
    """Litestar's own parameter checks (a `limit` that is not a number, …)."""
    field = None
    message = "Invalid request"
    extra = exc.extra if isinstance(exc.extra, list) else []
    if extra and isinstance(extra[0], dict):
        field = extra[0].get("key")
        message = f"{field}: {extra[0].get('message', 'invalid value')}"
    return problem_response(Problem(status=400, error="bad_request", message=message, field=field))


def handle_http(_request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    error = "not_found" if isinstance(exc, NotFoundException) else "error"
    message = "No such resource" if status == 404 else str(exc.detail)
    return problem_response(Problem(status=status, error=error, message=message))


def handle_unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("API request failed", exc_info=exc)
    return problem_response(
        Problem(status=500, error="internal", message="Internal error; it has been logged")
    )


EXCEPTION_HANDLERS = {
    ApiError: handle_api_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}

_UNAUTHORIZED = ResponseSpec(Problem, description="Missing, unknown or revoked token")
_RATE_LIMITED = ResponseSpec(
    Problem, description="Too many requests with this token; wait Retry-After seconds"
)
_BAD_REQUEST = ResponseSpec(Problem, description="Malformed input; `field` names it")
_NOT_FOUND = ResponseSpec(Problem, description="No such client for this token's office")
_NOT_MODIFIED = ResponseSpec(None, description="Unchanged since the ETag in If-None-Match")

LIST_ERRORS = {304: _NOT_MODIFIED, 400: _BAD_REQUEST, 401: _UNAUTHORIZED, 429: _RATE_LIMITED}
CLIENT_ERRORS = {**LIST_ERRORS, 404: _NOT_FOUND}
