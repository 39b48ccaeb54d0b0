"""Benchmark 3: the accountant's screen with 5,000 clients in one integration.

The app runs as its own process (`app.py run`, sync off) on a fresh database holding one
office, one integration and BENCH_SCREEN_CLIENTS clients in a realistic mix (most active and
synced, some failing, some without API access, some inactive, some new). Over real HTTP on
loopback, logged in, this process times:
- the integration page (GET /integrasjoner/{id}, a full page), and
- a search keystroke's fragment (the same URL with ?q=..., as htmx sends it with HX-Request),
typing names and organization numbers letter by letter, so every prefix is one request;
BENCH_SCREEN_REQUESTS of each (after a warm-up), reporting p50, p95, max and bytes.

Environment: BENCH_SCREEN_CLIENTS (5000), BENCH_SCREEN_REQUESTS (200),
BENCH_SCREEN_DATABASES (sqlite; add postgresql to run it there too).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from bench.common import (
    PYTHON,
    Child,
    emit,
    env_list,
    free_port,
    load_average,
    percentile,
    postgres_available,
    say,
    scratch_database,
)
from models import Client, Integration
from models.base import utcnow
from services import clients as client_service
from services.auth import create_user
from services.connectors.base import KeyKind
from services.connectors.tripletex import TripletexConnector
from services.crypto import KeyVault, last4
from services.db import create_engine, create_session_factory, open_session
from services.sync.status import SyncStatus, unavailable
from simulators.tripletex.generate import org_number, scaled_client_name

EMAIL, PASSWORD = "skjerm@benchmark.example", "benchmark-passord"
CLIENTS = int(os.environ.get("BENCH_SCREEN_CLIENTS", "5000"))
REQUESTS = int(os.environ.get("BENCH_SCREEN_REQUESTS", "200"))
TARGETS = {"fragment_p95_ms": 25, "page_p95_ms": 60, "fragment_max_bytes": 60 * 1024}


async def populate(url: str, encryption_key: str, clients: int) -> tuple[int, list[str]]:
    """One integration with `clients` clients; returns its id and some names and numbers."""
    import random

    database = create_engine(url)
    factory = create_session_factory(database)
    rng = random.Random(5000)
    taken: set[str] = set()
    now = utcnow()
    typed: list[str] = []
    async with open_session(factory) as db:
        user = await create_user(db, email=EMAIL, password=PASSWORD, office_name="Skjerm AS")
        integration = Integration(
            office_id=user.office_id,
            system="tripletex",
            description="Alle klientene",
            key_ciphertext=KeyVault((encryption_key,)).encrypt("bench-key"),
            key_last4=last4("bench-key"),
            key_kind=KeyKind.ACCOUNTANT,
            erp_company_id=1,
            erp_company_name="Skjerm AS",
        )
        db.add(integration)
        await db.flush()
        assert integration.id is not None
        for index in range(1, clients + 1):
            name, _ = scaled_client_name(index)
            client = Client(
                integration_id=integration.id,
                erp_id=100_000 + index,
                name="",
                sort_key="",
                search_text="",
            )
            client_service.describe(client, name, org_number(rng, taken))
            roll = rng.random()
            client.active = roll < 0.9
            client.is_new = roll >= 0.95
            if client.active:
                client.synced_at = now - timedelta(minutes=rng.randint(1, 600))
                client.sync_status = SyncStatus.OK
                if roll < 0.02:
                    client.sync_status, client.sync_error = (
                        SyncStatus.ERROR,
                        unavailable("Tripletex"),
                    )
                    client.sync_failures = 3
                elif roll < 0.03:
                    client.sync_status = SyncStatus.NO_ACCESS
                    client.sync_error = TripletexConnector.wording.no_api_access
            db.add(client)
            if index % 97 == 0:
                typed += [name, client.org_number]
        integration_id = integration.id
    await database.dispose()
    return integration_id, typed


def keystrokes(typed: list[str], count: int) -> list[str]:
    """Each name or number typed one character at a time: every prefix is a request."""
    queries: list[str] = []
    for text in typed:
        queries += [text[:i] for i in range(1, min(len(text), 12) + 1)]
    return (queries * (count // max(1, len(queries)) + 1))[:count]


async def login(http: httpx.AsyncClient) -> None:
    await http.get("/login")
    response = await http.post(
        "/login",
        data={
            "email": EMAIL,
            "password": PASSWORD,
            "_csrf_token": http.cookies.get("erp_csrf") or "",
        },
    )
    assert response.status_code in (200, 303), response.status_code


async def timed(http: httpx.AsyncClient, url: str, **kwargs: object) -> tuple[float, int, int, int]:
    """Milliseconds, bytes, the bytes gzip would make of them (level 6), bytes on the wire."""
    started = time.perf_counter()
    response = await http.get(url, **kwargs)  # type: ignore[arg-type]
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    zipped = len(gzip.compress(response.content, 6))
    return elapsed, len(response.content), zipped, response.num_bytes_downloaded


def figures(samples: list[tuple[float, int, int, int]]) -> dict:
    times = [t for t, _, _, _ in samples]
    sizes = [b for _, b, _, _ in samples]
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "max_ms": round(max(times), 2),
        "bytes_mean": round(sum(sizes) / len(sizes)),
        "bytes_max": max(sizes),
        "gzip_bytes_max": max(z for _, _, z, _ in samples),
        "wire_bytes_max": max(w for _, _, _, w in samples),
    }


async def measure(app: Child, integration_id: int, typed: list[str]) -> dict:
    page_url = f"/integrasjoner/{integration_id}"
    async with httpx.AsyncClient(base_url=app.url, timeout=30) as http:
        await login(http)
        headers = {
            "HX-Request": "true",
            "HX-Target": "client-table",
            "HX-Current-URL": app.url + page_url,
        }
        queries = keystrokes(typed, REQUESTS)
        for query in queries[:20]:  # warm-up: templates compiled, caches and pools filled
            await timed(http, page_url)
            await timed(http, page_url, params={"q": query}, headers=headers)
        pages = [await timed(http, page_url) for _ in range(REQUESTS)]
        fragments = [
            await timed(http, page_url, params={"q": query}, headers=headers) for query in queries
        ]
        empty = await timed(http, page_url, params={"q": ""}, headers=headers)
        if save := os.environ.get("BENCH_SCREEN_SAVE"):  # the unfiltered fragment, to look at
            response = await http.get(page_url, params={"q": ""}, headers=headers)
            await asyncio.to_thread(Path(save).write_bytes, response.content)
    return {
        "page": figures(pages),
        "fragment": figures(fragments),
        "fragment_unfiltered_bytes": empty[1],
    }


async def bench(kind: str) -> None:
    encryption_key = Fernet.generate_key().decode()
    async with scratch_database(kind, "screen") as url:
        started = time.monotonic()
        integration_id, typed = await populate(url, encryption_key, CLIENTS)
        setup = time.monotonic() - started
        port = free_port()
        data_dir = tempfile.mkdtemp(prefix="bench-screen-")
        env = {
            "DATABASE_URL": url,
            "SECRET_KEY": "benchmark-secret-key-that-is-long-enough-0123",
            "ENCRYPTION_KEY": encryption_key,
            "TRIPLETEX_CONSUMER_TOKEN": "bench-consumer",
            "TRIPLETEX_BASE_URL": "http://127.0.0.1:9/v2",  # never called: sync is off
            "SYNC_ENABLED": "false",
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "DATA_DIR": data_dir,
        }
        app = Child([PYTHON, "app.py", "run"], port=port, ready_path="/healthz", env=env)
        try:
            load = load_average()
            result = await measure(app, integration_id, typed)
        finally:
            app.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
    met = {
        "fragment_p95": result["fragment"]["p95_ms"] <= TARGETS["fragment_p95_ms"],
        "page_p95": result["page"]["p95_ms"] <= TARGETS["page_p95_ms"],
        "fragment_bytes": result["fragment"]["bytes_max"] <= TARGETS["fragment_max_bytes"],
    }
    emit(
        "screen",
        db=kind,
        clients=CLIENTS,
        requests=REQUESTS,
        setup_s=round(setup, 1),
        load_before=round(load, 2),
        **result,
        targets=TARGETS,
        met=met,
    )
    page, fragment = result["page"], result["fragment"]
    say(
        f"screen {kind} N={CLIENTS}: page p50 {page['p50_ms']} ms p95 {page['p95_ms']} ms "
        f"({page['bytes_mean']} B); keystroke fragment p50 {fragment['p50_ms']} ms "
        f"p95 {fragment['p95_ms']} ms, {fragment['bytes_mean']} B mean, "
        f"{fragment['bytes_max']} B max ({fragment['gzip_bytes_max']} B gzipped, "
        f"{fragment['wire_bytes_max']} B on the wire), "
        f"unfiltered {result['fragment_unfiltered_bytes']} B; "
        f"targets met: {met}"
    )


def main() -> None:
    for kind in env_list("BENCH_SCREEN_DATABASES", "sqlite"):
        if kind == "postgresql" and not postgres_available():
            emit("screen", db=kind, skipped="no PostgreSQL")
            continue
        asyncio.run(bench(kind))


if __name__ == "__main__":
    main()
