"""Logging that never writes a secret: Tripletex puts keys in the session URL's query.

Every record also carries the id of the HTTP request it belongs to (`record.request_id`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from litestar.exceptions import InternalServerException
from litestar.types import Scope

from services.request_context import current_request_id

# Also OpenID Connect's `code` and `state` in the callback's query (whoever holds the code
# with the session could finish the sign-in); whole names only (not "postcode=").
_SECRET_PARAMS = re.compile(
    r"((?:employee|consumer)Token|token|password|(?<![\w-])(?:code|state))=[^&\s\"']+", re.I
)
# Our own API tokens and webhook signing secrets, wherever they appear.
_OWN_SECRETS = re.compile(r"(erpapi_|whsec_)[A-Za-z0-9_\-+/=]{8,}")
# An invitation link's token, in a request line (services/invitations.py).
_INVITATION = re.compile(r"(/invitasjon/)[A-Za-z0-9_\-]{8,}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# What Litestar raises when the client hangs up before its request body has arrived.
CLIENT_GONE = "client disconnected prematurely"


def redact(text: str) -> str:
    text = _INVITATION.sub(r"\1***", text)
    return _OWN_SECRETS.sub(r"\1***", _SECRET_PARAMS.sub(r"\1=***", text))


def _redacting_factory(base: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            _clean_record(record, clean)
        # Here rather than in a logging.Filter: a filter on a logger misses records that
        # propagate from its children, and one on a handler misses handlers added by others.
        record.request_id = current_request_id()
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    return factory


def _clean_record(record: logging.LogRecord, clean: str) -> None:
    # Redact the arguments one by one where that is enough: some formatters (uvicorn's access
    # log) unpack `record.args` and fail on a record whose args were dropped.
    if isinstance(record.args, tuple):
        record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if record.getMessage() == clean:
            return
    record.msg, record.args = clean, None


def install_log_context() -> None:
    """Redaction and request ids on every record, whoever logs it; handlers are left alone.

    Idempotent: `create_app` calls it (tests never run `main`), and so does `configure_logging`.
    """
    # Redact where records are made, so no handler any library installs can see a secret.
    current = logging.getLogRecordFactory()
    if not getattr(current, "redacting", False):
        logging.setLogRecordFactory(_redacting_factory(current))


class TextFormatter(logging.Formatter):
    """The classic one-line format; tracebacks are redacted too (exception texts hold URLs)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None),
        }
        # Redact before encoding: masking inside JSON escapes could cut a string open.
        if record.exc_info:
            entry["exc_info"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack_info"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(log_format: str = "text", level: int = logging.INFO) -> None:
    """Set up the process's logging (root handler on stderr); the last call wins."""
    install_log_context()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request URL at INFO; our own log lines say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def log_uncaught(logger: logging.Logger, scope: Scope, _traceback: list[str]) -> None:
    """Litestar's log of an exception it answered (LoggingConfig.exception_logging_handler):
    the traceback, as Litestar's own would, except for a client that hung up mid-request:
    nothing of ours failed, and one line says what happened."""
    exc = sys.exc_info()[1]
    if isinstance(exc, InternalServerException) and exc.detail == CLIENT_GONE:
        logger.info(
            "Client disconnected before its request was read: %s %s",
            scope.get("method"),
            scope["path"],
        )
        return
    logger.exception(
        "Uncaught exception (connection_type=%s, path=%r):", scope["type"], scope["path"]
    )
