"""Helpers for the API tests: tokens made through the settings page, an API client
without a login session, and office B for cross-office checks."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient

from services import publishing
from services.ratelimit import API_LIMITER
from services.settings import Settings
from tests.conftest import add_user, csrf, login

TOKEN = re.compile(r"erpapi_[A-Za-z0-9_-]{43}")


async def create_token(client: AsyncTestClient, name: str = "Rapportering") -> str:
    """Ny API-nøkkel through the settings page; returns the token the page shows once."""
    await client.get("/innstillinger/api-nokler")
    response = await client.post(
        "/innstillinger/api-nokler", data={"name": name, "_csrf_token": csrf(client)}
    )
    assert response.status_code == 200, response.text
    found = TOKEN.findall(response.text)
    assert len(found) == 1, "the new token is shown exactly once"
    return found[0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    """The app as an API consumer sees it: no cookies, no session."""
    from app import create_app

    async with AsyncTestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
async def office_b(settings: Settings) -> AsyncIterator[AsyncTestClient]:
    from app import create_app

    await add_user(settings, "regnskap@kontor-b.no", "Kontor B AS")
    async with AsyncTestClient(create_app(settings)) as test_client:
        await login(test_client, "regnskap@kontor-b.no")
        yield test_client


@pytest.fixture(autouse=True)
def no_settle_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes are handed out at once (the settle delay guards concurrent commits)."""
    monkeypatch.setattr(publishing, "SETTLE", timedelta(0))
    API_LIMITER.reset()
