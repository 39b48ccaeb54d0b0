"""Stored login sessions: only for logins, keyed by a hash, ended on time, cleaned up."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import date, timedelta

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import User, WebSession
from models.base import utcnow
from services.connectors.registry import Connectors
from services.connectors.tripletex import TripletexClient, TripletexConnector
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory, open_session
from services.outbound import outbound
from services.settings import Settings
from services.sync.nightly import run_nightly
from tests.conftest import PASSWORD, add_user, login, query
from web.sessions import DatabaseStore

pytestmark = pytest.mark.anyio

EMAIL = "regnskap@kontor-a.no"


async def stored_keys(settings: Settings) -> list[str]:
    return [row[0] for row in await query(settings, "select key from web_session")]


async def change_sessions(settings: Settings, **values: object) -> None:
    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        await db.exec(update(WebSession).values(**values))  # type: ignore[call-overload]
    await engine.dispose()


def session_cookie(client: AsyncTestClient) -> str:
    return client.cookies.get("erp_session") or ""


async def logged_in(client: AsyncTestClient) -> bool:
    response = await client.get("/integrasjoner", follow_redirects=False)
    return response.status_code == 200


async def test_anonymous_requests_store_no_session(settings: Settings) -> None:
    from app import create_app

    async with AsyncTestClient(create_app(settings)) as anonymous:
        for path in ["/static/app.css"] * 20 + ["/login"] * 20 + ["/integrasjoner"] * 5:
            anonymous.cookies.clear()  # each a first visit, as a crawler or a probe makes
            response = await anonymous.get(path, follow_redirects=False)
            assert response.status_code in (200, 302, 303)
            assert "erp_session" not in response.headers.get("set-cookie", "")
    assert await stored_keys(settings) == []


async def test_static_files_carry_no_session_cookie_for_a_logged_in_user(
    client: AsyncTestClient,
) -> None:
    response = await client.get("/static/app.css")
    assert response.status_code == 200
    assert "erp_session" not in response.headers.get("set-cookie", "")


async def test_the_row_key_is_a_hash_of_the_cookie_and_names_the_user(
    client: AsyncTestClient, settings: Settings
) -> None:
    cookie = session_cookie(client)
    rows = await query(settings, "select key, user_id from web_session")
    user_id = (await query(settings, f"select id from user_account where email = '{EMAIL}'"))[0][0]
    assert rows == [(hashlib.sha256(cookie.encode()).hexdigest(), user_id)]
    assert cookie not in str(rows)


async def test_a_second_login_deletes_the_earlier_session(
    client: AsyncTestClient, settings: Settings
) -> None:
    first = session_cookie(client)
    await login(client, EMAIL)
    second = session_cookie(client)
    assert second != first
    assert await stored_keys(settings) == [hashlib.sha256(second.encode()).hexdigest()]
    client.cookies.set("erp_session", first, domain="testserver.local")
    assert not await logged_in(client)


async def test_a_session_ends_after_its_absolute_lifetime_however_active(
    client: AsyncTestClient, settings: Settings
) -> None:
    assert await logged_in(client)
    # Logged in 12 h ago and in use all along: the idle expiry is still hours away.
    await change_sessions(
        settings,
        created_at=utcnow() - timedelta(hours=12),
        expires_at=utcnow() + timedelta(hours=7),
    )
    assert not await logged_in(client)
    assert await stored_keys(settings) == []


async def test_the_absolute_lifetime_is_a_setting(settings: Settings) -> None:
    from app import create_app

    await add_user(settings, EMAIL, "Kontor A AS")
    two_hours = dataclasses.replace(settings, session_max_hours=2)
    async with AsyncTestClient(create_app(two_hours)) as client:
        await login(client, EMAIL)
        await change_sessions(settings, created_at=utcnow() - timedelta(hours=1, minutes=50))
        assert await logged_in(client)
        await change_sessions(settings, created_at=utcnow() - timedelta(hours=2, minutes=1))
        assert not await logged_in(client)


async def test_the_nightly_job_deletes_expired_sessions(settings: Settings) -> None:
    from app import create_app

    await add_user(settings, EMAIL, "Kontor A AS")
    async with (
        AsyncTestClient(create_app(settings)) as old,
        AsyncTestClient(create_app(settings)) as current,
    ):
        await login(old, EMAIL)
        await change_sessions(settings, expires_at=utcnow() - timedelta(minutes=1))
        await login(current, EMAIL)
    live = hashlib.sha256(session_cookie(current).encode()).hexdigest()
    assert len(await stored_keys(settings)) == 2

    engine = create_engine(settings.database_url)
    async with outbound(5) as out:
        connector = TripletexConnector(
            TripletexClient(
                out.erp,
                base_url=settings.system("tripletex").base_url,
                consumer_token=settings.system("tripletex").consumer_token,
            )
        )
        await run_nightly(
            create_session_factory(engine),
            KeyVault(settings.encryption_keys),
            Connectors([connector]),
            today=date.today(),
            years=2,
        )
    await engine.dispose()
    assert await stored_keys(settings) == [live]


async def test_deleting_a_user_ends_their_sessions(
    client: AsyncTestClient, settings: Settings
) -> None:
    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        await db.delete((await db.exec(select(User))).one())
    await engine.dispose()
    assert await stored_keys(settings) == []


async def test_secure_cookies_get_the_host_prefix(settings: Settings) -> None:
    from app import create_app

    await add_user(settings, EMAIL, "Kontor A AS")
    secure = dataclasses.replace(settings, secure_cookies=True)
    async with AsyncTestClient(create_app(secure), base_url="https://testserver.local") as client:
        page = await client.get("/login")
        csrf_cookie = page.headers["set-cookie"]
        assert csrf_cookie.startswith("__Host-erp_csrf=")
        assert "Secure" in csrf_cookie and "Path=/" in csrf_cookie
        assert "Domain" not in csrf_cookie
        response = await client.post(
            "/login",
            data={
                "email": EMAIL,
                "password": PASSWORD,
                "_csrf_token": client.cookies.get("__Host-erp_csrf"),
            },
            follow_redirects=False,
        )
        assert response.status_code == 303
        cookie = next(h for h in response.headers.get_list("set-cookie") if "erp_session=" in h)
        assert re.match(r"__Host-erp_session=[0-9a-f]{64};", cookie)
        assert "Secure" in cookie and "Path=/" in cookie and "HttpOnly" in cookie
        assert "Domain" not in cookie
        assert (await client.get("/integrasjoner", follow_redirects=False)).status_code == 200


async def delete_sessions(settings: Settings) -> None:
    """Another request's work: a logout in another tab, a password change, the nightly job."""
    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        await db.exec(delete(WebSession))  # type: ignore[call-overload]
    await engine.dispose()


@pytest.fixture
def ended_before_written(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each session the store writes is deleted by someone else after the store read it
    and before its write."""
    write = DatabaseStore._write

    async def ended_meanwhile(
        store: DatabaseStore, db: AsyncSession, key: str, **values: object
    ) -> bool:
        await delete_sessions(settings)
        return await write(store, db, key, **values)

    monkeypatch.setattr(DatabaseStore, "_write", ended_meanwhile)


async def test_a_session_ended_while_a_request_renews_it_leaves_that_request_logged_out(
    client: AsyncTestClient, settings: Settings, ended_before_written: None
) -> None:
    # An hour left of the idle expiry: this request renews it.
    await change_sessions(settings, expires_at=utcnow() + timedelta(hours=1))
    response = await client.get("/integrasjoner", follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"] == "/login"
    assert await stored_keys(settings) == []


async def test_new_data_for_an_ended_session_does_not_bring_it_back(
    settings: Settings, ended_before_written: None
) -> None:
    engine = create_engine(settings.database_url)
    store = DatabaseStore(create_session_factory(engine))
    try:
        await store.set("ny-økt", b"{}")  # new: no write over a row, so not deleted
        assert len(await stored_keys(settings)) == 1
        await store.set("ny-økt", b'{"theme": "dark"}', expires_in=3600)
        assert await stored_keys(settings) == []
        await store.replace("ny-økt", b'{"theme": "light"}', expires_in=3600)
        assert await stored_keys(settings) == []
    finally:
        await engine.dispose()


async def test_replace_writes_only_over_a_stored_session(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    store = DatabaseStore(create_session_factory(engine))
    try:
        await store.replace("aldri-lagret", b"{}", expires_in=3600)
        assert await stored_keys(settings) == []
        await store.set("lagret", b"{}", expires_in=3600)
        await store.replace("lagret", b'{"theme": "dark"}', expires_in=3600)
        assert await store.get("lagret") == b'{"theme": "dark"}'
    finally:
        await engine.dispose()
