"""The request id of the HTTP request being handled, for every log line it causes (set by
web/middleware.py's RequestIdMiddleware)."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()
