"""API-nøkler: made and revoked in Innstillinger, shown once, kept hashed; the API answers
401 without a valid token and 429 over a token's rate."""

from __future__ import annotations

import hashlib

import pytest
from litestar.testing import AsyncTestClient

from services.ratelimit import API_LIMITER, TokenBucketLimiter
from services.settings import Settings
from tests import api_support
from tests.api_support import bearer, create_token
from tests.conftest import csrf, htmx, query

api = api_support.api
no_settle_delay = api_support.no_settle_delay

pytestmark = pytest.mark.anyio


async def test_settings_link_in_the_top_bar_leads_to_api_keys(client: AsyncTestClient) -> None:
    page = await client.get("/integrasjoner")
    assert 'href="/innstillinger"' in page.text and ">Innstillinger<" in page.text
    settings_page = await client.get("/innstillinger")
    assert settings_page.status_code == 200
    assert "API-nøkler" in settings_page.text
    assert "Ny API-nøkkel" in settings_page.text
    assert ">Varsler</a>" in settings_page.text


async def test_new_token_is_shown_once_and_stored_only_as_a_hash(
    client: AsyncTestClient, settings: Settings
) -> None:
    token = await create_token(client, "Rapportering")
    rows = await query(settings, "select name, prefix, token_hash, revoked_at from api_token")
    assert rows == [("Rapportering", token[:11], hashlib.sha256(token.encode()).hexdigest(), None)]
    listing = (await client.get("/innstillinger/api-nokler")).text
    assert token not in listing
    assert "Rapportering" in listing and f"{token[:11]}…" in listing


async def test_new_token_response_is_not_cached(client: AsyncTestClient) -> None:
    await client.get("/innstillinger/api-nokler")
    response = await client.post(
        "/innstillinger/api-nokler", data={"name": "X", "_csrf_token": csrf(client)}
    )
    assert response.headers["cache-control"] == "no-store"


async def test_new_token_with_htmx_returns_the_section_only(client: AsyncTestClient) -> None:
    await client.get("/innstillinger/api-nokler")
    response = await client.post(
        "/innstillinger/api-nokler", data={"name": "Avstemming"}, headers=htmx(client)
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="api-tokens"')
    assert "vises bare denne ene gangen" in response.text


async def test_token_without_a_name_is_refused_with_the_field_marked(
    client: AsyncTestClient,
) -> None:
    await client.get("/innstillinger/api-nokler")
    response = await client.post(
        "/innstillinger/api-nokler", data={"name": "  "}, headers=htmx(client)
    )
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text
    assert "erpapi_" not in response.text


async def test_post_without_csrf_token_is_refused(client: AsyncTestClient) -> None:
    response = await client.post("/innstillinger/api-nokler", data={"name": "X"})
    assert response.status_code == 403


async def test_token_authenticates_and_records_last_use(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings
) -> None:
    token = await create_token(client)
    assert (await query(settings, "select last_used_at from api_token")) == [(None,)]
    response = await api.get("/api/v1/clients", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert "set-cookie" not in response.headers  # no session or CSRF cookie for the API
    (used,) = (await query(settings, "select last_used_at from api_token"))[0]
    assert used is not None
    listing = (await client.get("/innstillinger/api-nokler")).text
    assert "aldri" not in listing.split("Sist brukt")[1]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer"}, id="empty-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param({"Authorization": "Bearer erpapi_" + "x" * 43}, id="unknown-token"),
        pytest.param({"Authorization": "Bearer something-else"}, id="not-a-token"),
    ],
)
async def test_missing_or_unknown_token_is_401(
    api: AsyncTestClient, headers: dict[str, str]
) -> None:
    response = await api.get("/api/v1/clients", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body["status"] == 401 and body["error"] == "unauthorized"


async def test_revoked_token_is_401_at_once(
    client: AsyncTestClient, api: AsyncTestClient, settings: Settings
) -> None:
    token = await create_token(client)
    assert (await api.get("/api/v1/clients", headers=bearer(token))).status_code == 200
    (token_id,) = (await query(settings, "select id from api_token"))[0]
    response = await client.post(
        f"/innstillinger/api-nokler/{token_id}/trekk-tilbake", headers=htmx(client)
    )
    assert response.status_code == 200
    assert "Trukket tilbake" in response.text
    assert (await api.get("/api/v1/clients", headers=bearer(token))).status_code == 401


async def test_revoke_without_js_redirects_back(
    client: AsyncTestClient, settings: Settings
) -> None:
    await create_token(client)
    (token_id,) = (await query(settings, "select id from api_token"))[0]
    response = await client.post(
        f"/innstillinger/api-nokler/{token_id}/trekk-tilbake",
        data={"_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/innstillinger/api-nokler"


async def test_other_office_cannot_revoke_a_token(
    client: AsyncTestClient, settings: Settings
) -> None:
    from app import create_app
    from tests.conftest import add_user, login

    await create_token(client)
    (token_id,) = (await query(settings, "select id from api_token"))[0]
    await add_user(settings, "annen@kontor-b.no", "Kontor B AS")
    async with AsyncTestClient(create_app(settings)) as other:
        await login(other, "annen@kontor-b.no")
        assert "Ingen API-nøkler ennå" in (await other.get("/innstillinger/api-nokler")).text
        response = await other.post(
            f"/innstillinger/api-nokler/{token_id}/trekk-tilbake", headers=htmx(other)
        )
        assert response.status_code == 404
    assert (await query(settings, "select revoked_at from api_token")) == [(None,)]


async def test_settings_need_a_login(api: AsyncTestClient) -> None:
    response = await api.get("/innstillinger/api-nokler", follow_redirects=False)
    assert response.status_code in (302, 303, 307)
    assert response.headers["location"] == "/login"


async def test_requests_over_the_rate_are_429_with_retry_after(
    client: AsyncTestClient, api: AsyncTestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(API_LIMITER, "rate", 0.5)
    monkeypatch.setattr(API_LIMITER, "burst", 3)
    token = await create_token(client)
    statuses = [
        (await api.get("/api/v1/clients", headers=bearer(token))).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    response = await api.get("/api/v1/clients", headers=bearer(token))
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"] == "rate_limited"
    other = await create_token(client, "Annen")  # buckets are per token
    assert (await api.get("/api/v1/clients", headers=bearer(other))).status_code == 200


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = TokenBucketLimiter(rate=2, burst=2, clock=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(2)] == [0, 0]
    assert limiter.acquire("k") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.acquire("k") == 0
