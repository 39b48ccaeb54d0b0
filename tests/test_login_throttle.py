"""Failed logins are throttled per account and per client address, in the database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from services.settings import Settings
from tests.conftest import PASSWORD, add_user, query
from tests.login_support import csrf_field, served

pytestmark = pytest.mark.anyio

EMAIL = "regnskap@kontor-a.no"
LOCKED_1 = "For mange mislykkede forsøk. Prøv igjen om 1 minutt."


@pytest.fixture
async def anonymous(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await add_user(settings, EMAIL, "Kontor A AS")
    async with served(settings) as http:
        yield http


async def attempt(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post(
        "/login", data={"email": email, "password": password, **csrf_field(http)}
    )


async def end_locks(settings: Settings) -> None:
    """As if the lock's minutes had passed."""
    from sqlalchemy import update

    from models import LoginThrottle
    from models.base import utcnow
    from services.db import create_engine, create_session_factory, open_session

    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        await db.exec(update(LoginThrottle).values(locked_until=utcnow()))  # type: ignore[call-overload]
    await engine.dispose()


async def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(
    anonymous: httpx.AsyncClient,
) -> None:
    for _ in range(4):
        response = await attempt(anonymous, EMAIL, "feil-passord-123")
        assert response.status_code == 422
        assert "Feil e-post eller passord." in response.text
    fifth = await attempt(anonymous, EMAIL, "feil-passord-123")
    assert fifth.status_code == 429
    assert LOCKED_1 in fifth.text

    right = await attempt(anonymous, EMAIL, PASSWORD)
    assert right.status_code == 429
    assert LOCKED_1 in right.text
    assert (await anonymous.get("/integrasjoner", follow_redirects=False)).status_code != 200


async def test_the_lock_doubles_per_further_failure_and_a_success_clears_it(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    for _ in range(5):
        await attempt(anonymous, EMAIL, "feil-passord-123")
    await end_locks(settings)
    sixth = await attempt(anonymous, EMAIL, "feil-passord-123")
    assert sixth.status_code == 429
    assert "Prøv igjen om 2 minutter." in sixth.text
    await end_locks(settings)
    assert (await attempt(anonymous, EMAIL, PASSWORD)).status_code == 303
    assert await query(settings, "select kind from login_throttle") == [("address",)]


async def test_an_unknown_email_is_locked_the_same_way(anonymous: httpx.AsyncClient) -> None:
    """Lock behaviour must not tell which e-mail addresses have an account."""
    statuses = [
        (await attempt(anonymous, "ingen@kontor-a.no", "feil-passord-123")).status_code
        for _ in range(6)
    ]
    assert statuses == [422, 422, 422, 422, 429, 429]


async def at_once(client: httpx.AsyncClient, email_password: list[tuple[str, str]]) -> list[int]:
    """Attempts sent together, as a guessing script would: their statuses, sorted."""
    statuses: list[int] = []

    async def one(email: str, password: str) -> None:
        statuses.append((await attempt(client, email, password)).status_code)

    async with anyio.create_task_group() as group:
        for email, password in email_password:
            group.start_soon(one, email, password)
    return sorted(statuses)


async def test_guesses_sent_at_once_get_no_more_checks_than_guesses_in_turn(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    statuses = await at_once(anonymous, [(EMAIL, f"feil-passord-{n}") for n in range(12)])
    assert statuses == [422] * 4 + [429] * 8
    assert await query(settings, "select kind, failures from login_throttle order by kind") == [
        ("account", 5),
        ("address", 5),
    ]


async def test_twenty_failures_from_one_address_lock_it_for_every_account(
    anonymous: httpx.AsyncClient,
) -> None:
    guesses = [(f"gjett-{n}@kontor-a.no", "feil-passord-123") for n in range(20)]
    assert await at_once(anonymous, guesses) == [422] * 19 + [429]
    # An account no one guessed at, with its right password: the address is locked.
    right = await attempt(anonymous, EMAIL, PASSWORD)
    assert right.status_code == 429
    assert LOCKED_1 in right.text


async def test_successful_logins_do_not_use_up_the_address(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    """An office behind one address logs in all day."""
    for _ in range(21):
        assert (await attempt(anonymous, EMAIL, PASSWORD)).status_code == 303
    assert await query(settings, "select kind, failures from login_throttle") == [("address", 0)]
    assert (await attempt(anonymous, EMAIL, PASSWORD)).status_code == 303


async def test_each_failure_is_logged_with_account_and_address_never_the_password(
    anonymous: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="erp.auth"):
        await attempt(anonymous, "Regnskap@Kontor-A.no", "hemmelig-feil-passord")
    failures = [r for r in caplog.records if r.name == "erp.auth"]
    assert len(failures) == 1
    message = failures[0].getMessage()
    assert "regnskap@kontor-a.no" in message and "127.0.0.1" in message
    assert "hemmelig-feil-passord" not in caplog.text
