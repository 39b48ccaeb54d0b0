"""Security headers on every response, whoever made it; no-store on what is behind a login."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Response, get
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import create_integration, htmx

pytestmark = pytest.mark.anyio
EXPECTED = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
HSTS = "max-age=31536000; includeSubDomains"


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (name, response.status_code)
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, response.status_code
    # One of each: a second, different value would leave the browser to pick.
    assert len(response.headers.get_list("content-security-policy")) == 1


@get("/test-only/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("a bug in a handler")


@get("/test-only/own-headers", sync_to_thread=False)
def own_headers() -> Response[str]:
    return Response(
        "ok", headers={"Cache-Control": "public, max-age=60", "X-Frame-Options": "SAMEORIGIN"}
    )


@pytest.fixture
async def anonymous(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    from app import create_app

    app = create_app(settings)
    app.register(boom)  # a handler that fails, as a bug would
    app.register(own_headers)
    async with AsyncTestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


async def test_error_and_non_page_responses_carry_the_headers(
    anonymous: AsyncTestClient,
) -> None:
    responses = {
        "unknown path": await anonymous.get("/finnes/ikke"),
        "method not allowed": await anonymous.delete("/healthz"),
        "handler error": await anonymous.get("/test-only/boom"),
        "login redirect": await anonymous.get("/integrasjoner", follow_redirects=False),
        "healthz": await anonymous.get("/healthz"),
        "metrics": await anonymous.get("/metrics"),
        "api without token": await anonymous.get("/api/v1/clients"),
        "static file": await anonymous.get("/static/app.css"),
        "csrf refused": await anonymous.post("/login", data={"email": "x", "password": "y"}),
    }

    assert {name: r.status_code for name, r in responses.items()} == {
        "unknown path": 404,
        "method not allowed": 405,
        "handler error": 500,
        "login redirect": 302,
        "healthz": 200,
        "metrics": 200,
        "api without token": 401,
        "static file": 200,
        "csrf refused": 403,
    }
    for response in responses.values():
        assert_security_headers(response)


async def test_pages_and_fragments_behind_a_login_are_not_stored(
    client: AsyncTestClient,
) -> None:
    integration_id = await create_integration(client)

    page = await client.get(f"/integrasjoner/{integration_id}")
    fragment = await client.get(
        f"/integrasjoner/{integration_id}/klienter", params={"offset": "0"}, headers=htmx(client)
    )
    settings_page = await client.get("/innstillinger/api-nokler")

    for response in (page, fragment, settings_page):
        assert response.status_code == 200
        assert_security_headers(response)
        assert response.headers["cache-control"] == "no-store"


async def test_api_answers_are_not_stored(client: AsyncTestClient, settings: Settings) -> None:
    from app import create_app
    from tests.api_support import bearer, create_token

    token = await create_token(client)
    async with AsyncTestClient(create_app(settings)) as api:
        response = await api.get("/api/v1/clients", headers=bearer(token))

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["etag"]  # still there for If-None-Match
    assert_security_headers(response)


async def test_static_files_stay_cacheable(anonymous: AsyncTestClient) -> None:
    response = await anonymous.get("/static/app.css")

    assert response.status_code == 200
    assert "no-store" not in response.headers.get("cache-control", "")
    assert response.headers.get("etag") or response.headers.get("last-modified")


async def test_hsts_only_with_secure_cookies(settings: Settings) -> None:
    from app import create_app

    async with AsyncTestClient(create_app(settings)) as plain:
        assert "strict-transport-security" not in (await plain.get("/healthz")).headers
    secure = dataclasses.replace(settings, secure_cookies=True)
    async with AsyncTestClient(create_app(secure), base_url="https://testserver.local") as tls:
        for path in ("/healthz", "/static/app.css", "/finnes/ikke"):
            assert (await tls.get(path)).headers.get("strict-transport-security") == HSTS


async def test_a_header_a_route_sets_on_purpose_is_kept(anonymous: AsyncTestClient) -> None:
    response = await anonymous.get("/test-only/own-headers")

    assert response.headers.get_list("cache-control") == ["public, max-age=60"]
    assert response.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert response.headers["x-content-type-options"] == "nosniff"  # the rest still added


async def test_the_demo_simulator_on_the_apps_port_carries_them_too(settings: Settings) -> None:
    from web.plugins import with_simulator

    simulator_only = with_simulator(lambda *_: None)  # type: ignore[arg-type, return-value]
    transport = httpx.ASGITransport(app=simulator_only)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
        response = await http.get("/tripletex/v2/token/session/>whoAmI")
    assert response.status_code == 401
    assert_security_headers(response)
