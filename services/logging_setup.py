"""Logging that never writes a secret: Tripletex puts keys in the session URL's query."""

from __future__ import annotations

import logging
import re
from typing import Any

_SECRET_PARAMS = re.compile(r"((?:employee|consumer)Token|token|password)=[^&\s\"']+", re.I)


def redact(text: str) -> str:
    return _SECRET_PARAMS.sub(r"\1=***", text)


def _redacting_factory(base: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    return factory


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # httpx logs every request URL at INFO; our own log lines say what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # Redact where records are made, so no handler any library installs can see a secret.
    current = logging.getLogRecordFactory()
    if not getattr(current, "redacting", False):
        logging.setLogRecordFactory(_redacting_factory(current))
