"""Structured logs, request ids in them, and no Tripletex key in any of them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest
from litestar.testing import AsyncTestClient

from services.logging_setup import JsonFormatter, configure_logging, install_log_context
from services.request_context import request_id_var
from services.settings import Settings
from tests.conftest import create_integration

pytestmark = pytest.mark.anyio


async def test_json_formatter_writes_one_object_per_line() -> None:
    install_log_context()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.json")
    log.addHandler(handler)
    log.propagate = False
    token = request_id_var.set("req-42")
    try:
        log.warning("two\nlines, password=hunter2")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        request_id_var.reset(token)
        log.removeHandler(handler)
        log.propagate = True

    lines = stream.getvalue().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert len(lines) == 2
    assert first["message"] == "two\nlines, password=***"
    assert (first["level"], first["logger"], first["request_id"]) == (
        "WARNING",
        "tests.json",
        "req-42",
    )
    assert first["time"].endswith("Z") and datetime.fromisoformat(first["time"])
    assert "exc_info" not in first
    assert "ValueError: boom" in second["exc_info"]


async def test_configure_logging_keeps_its_default_and_the_last_call_wins() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging()
        configure_logging("json")
        assert [type(h.formatter) for h in root.handlers] == [JsonFormatter]
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        # A plain formatter, as any library's handler would have: the records must be clean.
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(request_id)s %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@contextmanager
def every_log_record() -> Iterator[_Collect]:
    """Every logger at DEBUG into one handler while the block runs, then as before."""
    root = logging.getLogger()
    loggers = [root] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    # Loggers that do not propagate (uvicorn's) would never reach a root handler.
    own = [root] + [logger for logger in loggers if not logger.propagate]
    handler = _Collect()
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
    for logger in own:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in own:
            logger.removeHandler(handler)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled


async def test_no_tripletex_key_or_consumer_token_in_any_log(client: AsyncTestClient) -> None:
    client.headers["X-Request-ID"] = "flow-1"
    with every_log_record() as captured:
        integration_id = await create_integration(client, key="demo-regnskapskontor")
        await client.get(f"/integrasjoner/{integration_id}")

    output = "\n".join(captured.lines)
    assert "employeeToken=***" in output  # the client's line for the session URL: masked
    assert "demo-regnskapskontor" not in output
    assert "demo-consumer-token" not in output
    # The app's calls to Tripletex carry the id of the request that made them.
    outgoing = [
        r
        for r in captured.records
        if r.name == "services.connectors.tripletex" and "/v2/" in r.getMessage()
    ]
    assert outgoing and all(r.request_id == "flow-1" for r in outgoing)


async def test_no_sign_in_code_state_or_invitation_token_in_the_access_log(
    settings: Settings,
) -> None:
    """uvicorn's access line names the whole request path, query included: the provider's
    `code` and `state` on the way back, and an invitation's token, are masked in it."""
    from tests.login_support import served

    code, state = "kode-fra-leverandoren-8f3a9c", "tilstand-fra-leverandoren-51d2e7"
    token = "abcdefghijklmnopqrstuvwxyz0123456789"
    async with served(settings) as http:
        with every_log_record() as captured:
            await http.get(f"/login/oidc/callback?code={code}&state={state}")
            await http.get(f"/invitasjon/{token}")
    access = [r.getMessage() for r in captured.records if r.name == "uvicorn.access"]
    assert any("/login/oidc/callback?code=***&state=*** HTTP/1.1" in line for line in access), (
        access
    )
    assert any("/invitasjon/*** HTTP/1.1" in line for line in access), access
    output = "\n".join(captured.lines)
    assert code not in output and state not in output and token not in output
