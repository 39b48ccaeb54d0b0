"""Password hashing never holds up other requests: argon2 runs in worker threads."""

from __future__ import annotations

import threading

import anyio
import pytest

from services import auth
from services.settings import Settings
from tests.conftest import add_user
from tests.login_support import csrf_field, served

pytestmark = pytest.mark.anyio

EMAIL = "regnskap@kontor-a.no"
LOGINS = 3  # wrong passwords, below the account's lock


class Verifications:
    """The password checks, counted: how many run at this moment and at most."""

    def __init__(self) -> None:
        self._real = auth._check_password
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most = 0

    def __call__(self, password: str, password_hash: str) -> bool:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return self._real(password, password_hash)
        finally:
            with self._lock:
                self.in_flight -= 1


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Verifications:
    counted = Verifications()
    monkeypatch.setattr(auth, "_check_password", counted)
    return counted


async def test_healthz_answers_while_logins_verify_passwords(
    settings: Settings, verifications: Verifications
) -> None:
    """Not a timing threshold (this machine is shared): on the event loop, no request could
    finish while a verification runs, and verifications could only run one at a time."""
    await add_user(settings, EMAIL, "Kontor A AS")

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
                in_flight_at_answers.append(verifications.in_flight)

    assert max(in_flight_at_answers) == LOGINS, in_flight_at_answers


async def test_a_burst_of_logins_runs_at_most_four_verifications_at_once(
    settings: Settings, verifications: Verifications
) -> None:
    """Each argon2 run holds 64 MB: a burst queues instead of taking every worker thread."""
    async with served(settings) as http:

        async def log_in(number: int) -> None:
            form = {"email": f"ukjent{number}@kontor.no", "password": "feil-passord-123"}
            response = await http.post("/login", data={**form, **csrf_field(http)})
            assert response.status_code == 422

        async with anyio.create_task_group() as group:
            for number in range(10):
                group.start_soon(log_in, number)

    assert verifications.most == 4
