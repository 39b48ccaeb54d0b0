"""/healthz, /readyz, /metrics and request ids."""

from __future__ import annotations

import dataclasses

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from services.db import create_engine, migrate_async
from services.settings import Settings
from tests.conftest import create_integration, free_port

pytestmark = pytest.mark.anyio


async def execute(url: str, sql: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text(sql))
    await engine.dispose()


async def readyz(settings: Settings, database_url: str) -> tuple[int, dict]:
    from app import create_app

    app = create_app(dataclasses.replace(settings, database_url=database_url))
    async with AsyncTestClient(app) as client:
        response = await client.get("/readyz")
    return response.status_code, response.json()


def samples(exposition: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(exposition)
        for s in family.samples
        if s.name == name
    }


async def test_healthz_and_readyz_need_no_login_and_set_no_cookie(client: AsyncTestClient) -> None:
    client.cookies.clear()
    health = await client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "scheduler": "disabled"},
    }
    for response in (health, ready, await client.get("/metrics")):
        assert "set-cookie" not in response.headers


async def test_readyz_names_migrations_when_the_version_is_missing_or_unknown(
    settings: Settings, scratch_url: str
) -> None:
    await migrate_async(scratch_url)
    await execute(scratch_url, "DELETE FROM alembic_version")
    status, body = await readyz(settings, scratch_url)
    assert status == 503
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["migrations"].startswith("behind: at none, head ")

    # A revision this release does not have: a newer release migrated the database.
    await execute(scratch_url, "INSERT INTO alembic_version (version_num) VALUES ('9999')")
    status, body = await readyz(settings, scratch_url)
    assert status == 503
    assert body["checks"]["migrations"].startswith("unknown revision: at 9999, head ")


async def test_readyz_names_the_database_when_it_cannot_be_reached(settings: Settings) -> None:
    # A port nobody listens on: the connection is refused at once.
    url = f"postgresql+asyncpg://erp:secret@127.0.0.1:{free_port()}/erp"
    status, body = await readyz(settings, url)
    assert status == 503
    assert body["status"] == "not ready"
    assert body["checks"]["database"].startswith("error: ")
    assert "secret" not in str(body)


async def test_metrics_count_tripletex_and_our_requests_by_route(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    assert (await client.get(f"/integrasjoner/{integration_id}")).status_code == 200
    await client.get("/no-such-page")

    exposition = (await client.get("/metrics")).text
    tripletex = samples(exposition, "erp_system_requests_total")
    assert tripletex[(("method", "PUT"), ("status", "200"), ("system", "tripletex"))] >= 1
    assert tripletex[(("method", "GET"), ("status", "200"), ("system", "tripletex"))] >= 1
    http = samples(exposition, "erp_http_requests_total")
    routes = {dict(labels)["route"] for labels in http}
    assert "/integrasjoner/{integration_id}" in routes
    assert "unmatched" in routes
    assert f"/integrasjoner/{integration_id}" not in routes
    assert http[(("method", "POST"), ("route", "/integrasjoner/ny"), ("status", "303"))] == 1
    for declared in ("erp_syncs_total", "erp_webhook_events_total"):
        assert f"# TYPE {declared} counter" in exposition
    assert samples(exposition, "erp_sync_failures_total") == {(): 0.0}


async def test_request_id_is_echoed_when_sane_and_made_otherwise(client: AsyncTestClient) -> None:
    echoed = await client.get("/healthz", headers={"X-Request-ID": "lb-1234.abc_DEF"})
    assert echoed.headers["x-request-id"] == "lb-1234.abc_DEF"
    for bad in ("has space", "x" * 65, "<script>"):
        response = await client.get("/healthz", headers={"X-Request-ID": bad})
        assert response.headers["x-request-id"] != bad
        assert len(response.headers["x-request-id"]) == 32
    # Also on answers made outside any route: no route matched, or the CSRF check refused.
    for response in (await client.get("/no-such-page"), await client.post("/logout")):
        assert response.status_code in (403, 404)
        assert len(response.headers["x-request-id"]) == 32


async def test_readyz_reports_the_running_scheduler(settings: Settings) -> None:
    from dataclasses import replace

    from app import create_app
    from services.settings import SyncConfig

    with_scheduler = replace(settings, sync=SyncConfig(enabled=True, tick_seconds=3600))
    async with AsyncTestClient(create_app(with_scheduler)) as app_client:
        response = await app_client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["scheduler"] == "ok"
