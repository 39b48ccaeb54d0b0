"""Failed logins are throttled per account and per client address, in the database."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from services import auth, login_throttle
from services.login_throttle import address_key
from services.settings import Settings
from tests.conftest import PASSWORD, add_user, query
from tests.login_support import csrf_field, served

pytestmark = pytest.mark.anyio

EMAIL = "regnskap@kontor-a.no"
LOCKED_1 = "For mange mislykkede forsøk. Prøv igjen om 1 minutt."
DELAYS = login_throttle.DELAYS  # as shipped: read before tests/conftest.py empties it


@pytest.fixture
async def anonymous(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await add_user(settings, EMAIL, "Kontor A AS")
    async with served(settings) as http:
        yield http


async def attempt(
    http: httpx.AsyncClient, email: str, password: str, forwarded_for: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return await http.post(
        "/login", data={"email": email, "password": password, **csrf_field(http)}, headers=headers
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


async def at_once(
    client: httpx.AsyncClient,
    email_password: list[tuple[str, str]],
    forwarded_for: list[str] | None = None,
) -> list[int]:
    """Attempts sent together, as a guessing script would: their statuses, sorted."""
    statuses: list[int] = []

    async def one(email: str, password: str, address: str | None) -> None:
        statuses.append((await attempt(client, email, password, address)).status_code)

    async with anyio.create_task_group() as group:
        for n, (email, password) in enumerate(email_password):
            group.start_soon(one, email, password, forwarded_for[n] if forwarded_for else None)
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


async def test_an_email_address_as_typed_shares_its_count_with_its_plain_form(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    for typed in [" Regnskap@Kontor-A.no ", "REGNSKAP@kontor-a.no", " regnskap@KONTOR-A.NO"]:
        assert (await attempt(anonymous, typed, "feil-passord-123")).status_code == 422
    assert (await attempt(anonymous, EMAIL, "feil-passord-123")).status_code == 422
    fifth = await attempt(anonymous, EMAIL, "feil-passord-123")
    assert fifth.status_code == 429
    assert await query(
        settings, "select subject, failures from login_throttle where kind = 'account'"
    ) == [(EMAIL, 5)]


def test_an_ipv6_client_is_counted_by_its_64_and_a_mapped_ipv4_one_as_ipv4() -> None:
    """One customer line is handed a whole /64: its host can send from any address in it."""
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:DB8:1:2:ffff:ffff:ffff:fffe") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("unknown") == "unknown"


async def test_addresses_rotated_within_one_ipv6_64_lock_together(
    anonymous: httpx.AsyncClient, settings: Settings
) -> None:
    """From behind the proxy (127.0.0.1, trusted): a new address in the /64 per guess."""
    guesses = [(f"gjett-{n}@kontor-a.no", "feil-passord-123") for n in range(20)]
    addresses = [f"2001:db8:1:2:{n:x}::{n + 1:x}" for n in range(20)]
    assert await at_once(anonymous, guesses, addresses) == [422] * 19 + [429]
    assert await query(settings, "select subject from login_throttle where kind = 'address'") == [
        ("2001:db8:1:2::/64",)
    ]
    refused = await attempt(anonymous, EMAIL, PASSWORD, "2001:db8:1:2:abcd::1")
    assert refused.status_code == 429
    # The next /64 is another customer.
    assert (await attempt(anonymous, EMAIL, PASSWORD, "2001:db8:1:3::1")).status_code == 303


async def test_x_forwarded_for_from_a_client_not_the_proxy_is_ignored(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """FORWARDED_ALLOW_IPS names the proxy (here 10.9.9.9): a client that sends the header
    itself cannot pick the address its failures are counted under."""
    await add_user(settings, EMAIL, "Kontor A AS")
    async with served(settings, forwarded_allow_ips="10.9.9.9") as http:
        with caplog.at_level(logging.INFO, logger="erp.auth"):
            for n in range(3):
                response = await attempt(http, EMAIL, "feil-passord-123", f"203.0.113.{n}")
                assert response.status_code == 422
    assert await query(
        settings, "select subject, failures from login_throttle where kind = 'address'"
    ) == [("127.0.0.1", 3)]
    assert "203.0.113" not in caplog.text


async def test_failures_wait_longer_and_longer_before_the_answer(
    anonymous: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the third failure: 1, 2, 4 s, then 5 s each. A refusal while locked and a
    success are answered at once."""
    monkeypatch.setattr(login_throttle, "DELAYS", DELAYS)
    waits: list[float] = []

    async def wait(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(auth, "sleep", wait)
    statuses = [(await attempt(anonymous, EMAIL, "feil-passord-123")).status_code for _ in range(5)]
    assert statuses == [422, 422, 422, 422, 429]
    assert waits == [1.0, 2.0, 4.0]
    assert (await attempt(anonymous, EMAIL, "feil-passord-123")).status_code == 429  # locked
    assert waits == [1.0, 2.0, 4.0]
    for _ in range(2):
        await end_locks(settings)
        assert (await attempt(anonymous, EMAIL, "feil-passord-123")).status_code == 429
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    await end_locks(settings)
    assert (await attempt(anonymous, EMAIL, PASSWORD)).status_code == 303
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]


async def test_text_typed_as_the_email_is_logged_only_when_it_names_a_user(
    anonymous: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A password typed into the e-mail field must not reach the log, in any case."""
    with caplog.at_level(logging.INFO, logger="erp.auth"):
        for _ in range(2):
            await attempt(anonymous, "Hemmelig-Passord-2024", "feil-passord-123")
    messages = [r.getMessage() for r in caplog.records if r.name == "erp.auth"]
    assert len(messages) == 2
    assert "hemmelig" not in caplog.text.lower()
    tags = {re.search(r"account=(unknown:[0-9a-f]{12}) ", m).group(1) for m in messages}  # type: ignore[union-attr]
    assert len(tags) == 1  # the same text, the same tag: repeated guesses show as such
