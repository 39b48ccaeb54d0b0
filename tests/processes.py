"""Starting the app as its own process, the way an operator or `make run` does."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


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
