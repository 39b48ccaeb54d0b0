"""A client's mistakes and hang-ups are one log line each, not a traceback; bugs still are.

The app under uvicorn on a real port, as served: its access line is part of what is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import get

from services.settings import Settings
from tests.conftest import free_port
from tests.processes import served_here
from tests.test_logging import _Collect, every_log_record

pytestmark = pytest.mark.anyio


@get("/test-only/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("a bug in a handler")


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[int]:
    """The app on a real port; yields the port."""
    from app import create_app

    app = create_app(settings)
    app.register(boom)
    port = free_port()
    async with served_here(app, port, log_level="info"):
        yield port


def about(captured: _Collect, path: str) -> list[logging.LogRecord]:
    """The server's records that name the path (not the test's own HTTP client's)."""
    return [
        r
        for r in captured.records
        if path in r.getMessage() and not r.name.startswith(("httpx", "httpcore"))
    ]


def tracebacks(captured: _Collect) -> list[str]:
    return [r.getMessage() for r in captured.records if r.exc_info or r.exc_text]


async def test_a_405_is_one_line(served: int) -> None:
    with every_log_record() as captured:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served}") as http:
            response = await http.delete("/healthz")

    assert response.status_code == 405
    assert not tracebacks(captured)
    lines = [r.getMessage() for r in about(captured, "/healthz")]
    assert len(lines) == 1 and lines[0].endswith(" 405"), lines  # uvicorn's access line


async def test_a_client_that_hangs_up_mid_request_is_one_line(served: int) -> None:
    with every_log_record() as captured:
        _, writer = await asyncio.open_connection("127.0.0.1", served)
        writer.write(
            b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
            b"email=someone%40kontor.no&password="
        )
        await writer.drain()
        await asyncio.sleep(0.3)  # the app is waiting for the rest of the body
        writer.close()
        await writer.wait_closed()
        for _ in range(100):  # until the app has noticed
            if about(captured, "/login"):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # and anything it logs after that

    lines = [r.getMessage() for r in about(captured, "/login")]
    assert not tracebacks(captured), tracebacks(captured)
    assert len(lines) == 1, lines
    assert "disconnected" in lines[0]


async def test_a_bug_still_logs_its_traceback(served: int) -> None:
    """The quieting is for the client's doing only."""
    with every_log_record() as captured:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served}") as http:
            response = await http.get("/test-only/boom")

    assert response.status_code == 500
    (record,) = [r for r in about(captured, "/test-only/boom") if r.name == "litestar"]
    assert record.exc_info and "a bug in a handler" in str(record.exc_info[1])
