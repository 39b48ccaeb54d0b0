"""Password hashing never holds up other requests: argon2 runs in worker threads."""

from __future__ import annotations

import threading

import anyio
import pytest
from passlib.hash import argon2

from services.settings import Settings
from tests.conftest import add_user
from tests.login_support import csrf_field, served

pytestmark = pytest.mark.anyio

EMAIL = "regnskap@kontor-a.no"
LOGINS = 3  # wrong passwords, below the account's lock


async def test_healthz_answers_while_logins_verify_passwords(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a timing threshold (this machine is shared): on the event loop, no request could
    finish while a verification runs, and verifications could only run one at a time."""
    await add_user(settings, EMAIL, "Kontor A AS")
    real_verify = argon2.verify
    lock = threading.Lock()
    in_flight = 0

    def counted_verify(secret: str, hash: str) -> bool:
        nonlocal in_flight
        with lock:
            in_flight += 1
        try:
            return real_verify(secret, hash)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(argon2, "verify", counted_verify)

    async with served(settings) as http:
        pending = LOGINS

        async def log_in() -> None:
            nonlocal pending
            form = {"email": EMAIL, "password": "feil-passord-123", **csrf_field(http)}
            assert (await http.post("/login", data=form)).status_code == 422
            pending -= 1

        in_flight_at_answers: list[int] = []
        async with anyio.create_task_group() as group:
            for _ in range(LOGINS):
                group.start_soon(log_in)
            while pending:
                assert (await http.get("/healthz")).status_code == 200
                in_flight_at_answers.append(in_flight)

    assert max(in_flight_at_answers) == LOGINS, in_flight_at_answers
