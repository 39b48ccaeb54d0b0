"""What every benchmark shares: JSON-line output, child processes on loopback, scratch
databases on SQLite or PostgreSQL, memory readings, percentiles."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_ints(name: str, default: str) -> list[int]:
    return [int(item) for item in env_list(name, default)]


def emit(bench: str, **figures: Any) -> None:
    """One JSON line of figures (stdout), for machines; the summaries are for people."""
    print(json.dumps({"bench": bench, **figures}, default=str), flush=True)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current RSS, peak RSS since start or the last reset_peak_rss) in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def reset_peak_rss() -> None:
    """Make VmHWM start again from the current RSS (Linux: clear_refs 5)."""
    with suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return os.getloadavg()[0]


class Child:
    """A process of ours on loopback, ended (by its own pid) when the benchmark is done."""

    def __init__(self, command: list[str], *, port: int, ready_path: str, env=None, log=None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = Path(log or tempfile.mktemp(prefix="bench-", suffix=".log"))
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(self.url + ready_path, timeout=5).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{command} did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not os.environ.get("BENCH_KEEP_LOGS"):
            self.log.unlink(missing_ok=True)


def start_simulator(sizes: list[int], latency: float) -> Child:
    port = free_port()
    command = [PYTHON, "-m", "bench.sim_server", "--port", str(port)]
    command += ["--sizes", ",".join(map(str, sizes)), "--latency", str(latency)]
    return Child(command, port=port, ready_path="/_sim/health")


def postgres_available() -> bool:
    import asyncio

    import asyncpg

    async def check() -> None:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=3)
        await connection.close()

    try:
        asyncio.run(check())
        return True
    except Exception:
        return False


@asynccontextmanager
async def scratch_database(kind: str, label: str) -> AsyncIterator[str]:
    """An empty, migrated database of its own; dropped (PostgreSQL) or deleted afterwards."""
    import asyncpg

    from services.db import migrate_async

    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix=f"bench-{label}-") as folder:
            url = f"sqlite+aiosqlite:///{folder}/erp.sqlite3"
            await migrate_async(url)
            yield url
        return
    name = f"erp_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    url = url.replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        await migrate_async(url)
        yield url
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
