"""One password policy wherever a password is set: `create-user` and Endre passord."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import PASSWORD, login, query
from tests.login_support import change_password

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[1]
GOOD = "Blåbærsyltetøy på lørdag"

REFUSED = [
    pytest.param("12345678", "at least 12 characters", "minst 12 tegn", id="short-digits"),
    pytest.param("password", "at least 12 characters", "minst 12 tegn", id="short-word"),
    pytest.param(" " * 12, "only spaces", "bare være mellomrom", id="twelve-spaces"),
    pytest.param("Qwerty123456", "most common", "vanligste", id="long-common"),
    pytest.param("x" * 1001, "at most 1000", "høyst 1000", id="longer-than-login-reads"),
]


def create_user_cli(settings: Settings, tmp_path: Path, email: str, password: str):  # type: ignore[no-untyped-def]
    """The real command, the password piped in as a script or entrypoint does."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key,
        "ENCRYPTION_KEY": settings.encryption_keys[0],
        "TRIPLETEX_BASE_URL": settings.system("tripletex").base_url,
        "TRIPLETEX_CONSUMER_TOKEN": "cli-test-consumer-token",
        "DATA_DIR": str(tmp_path),
        "LOG_FORMAT": "text",
    }
    env.pop("DEMO", None)
    return subprocess.run(
        [sys.executable, "app.py", "create-user", "--email", email, "--office", "Kontor B AS"],
        cwd=ROOT,
        env=env,
        input=password + "\n",
        text=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.parametrize(("password", "english", "_norwegian"), REFUSED)
async def test_create_user_refuses_a_weak_password(
    settings: Settings, tmp_path: Path, password: str, english: str, _norwegian: str
) -> None:
    result = await anyio.to_thread.run_sync(
        create_user_cli, settings, tmp_path, "ny@kontor-b.no", password
    )
    assert result.returncode == 1
    assert "Not created: password" in result.stderr and english in result.stderr
    assert await query(settings, "select email from user_account") == []


async def test_create_user_accepts_a_good_password(settings: Settings, tmp_path: Path) -> None:
    from app import create_app

    result = await anyio.to_thread.run_sync(
        create_user_cli, settings, tmp_path, "ny@kontor-b.no", GOOD
    )
    assert result.returncode == 0, result.stderr
    assert "Created ny@kontor-b.no" in result.stdout
    async with AsyncTestClient(create_app(settings)) as client:
        await login(client, "ny@kontor-b.no", GOOD)


@pytest.mark.parametrize(("password", "_english", "norwegian"), REFUSED)
async def test_the_change_page_refuses_a_weak_password(
    client: AsyncTestClient, password: str, _english: str, norwegian: str
) -> None:
    response = await change_password(client, PASSWORD, password)
    assert response.status_code == 422
    assert norwegian in response.text
    assert 'id="new-error"' in response.text and 'aria-invalid="true"' in response.text
    await login(client, "regnskap@kontor-a.no", PASSWORD)  # unchanged
