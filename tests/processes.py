"""Serving for tests: the app as its own process, the way an operator or `make run` does;
or an ASGI app (the app, a simulator, a receiver) on a loopback port within the test run."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn


class ServerDidNotStart(RuntimeError):
    pass


def serve(
    command: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout: float = 60
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `command` (it serves on env["PORT"]) and wait until /login answers 200.
    Returns the process and its base URL; raises with the server's log if it never does."""
    url = f"http://127.0.0.1:{env['PORT']}"
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise ServerDidNotStart(f"`{' '.join(command)}` did not serve:\n{log.read_text()}")
        time.sleep(0.1)


@asynccontextmanager
async def served_here(app: Any, port: int, **config: Any) -> AsyncIterator[None]:
    """`app` on a loopback port, served by uvicorn in this event loop (the test's)."""
    config.setdefault("log_level", "warning")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    task = asyncio.create_task(server.serve())
    while not server.started:  # uvicorn offers no event to wait on
        if task.done():
            task.result()  # raises why it did not start
        await asyncio.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@contextmanager
def served_in_thread(
    app: Any, port: int, *, start_seconds: float = 10, **config: Any
) -> Iterator[None]:
    """`app` on a loopback port, served by uvicorn in a thread of its own (for fixtures that
    outlive one test's event loop)."""
    config.setdefault("log_level", "warning")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_seconds
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise ServerDidNotStart(f"no server on port {port}")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=5)
