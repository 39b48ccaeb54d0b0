"""Rotating ENCRYPTION_KEY: every stored Tripletex key moves to the newest key, with no
downtime ("new,old" -> rotate-keys -> "new"), and an undecryptable key changes nothing."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import anyio
import pytest
from cryptography.fernet import Fernet
from litestar.testing import AsyncTestClient
from sqlalchemy import update
from sqlmodel import col

from models import Integration
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory, open_session
from services.key_rotation import KeyRotationError, rotate_keys
from services.settings import Settings
from tests.conftest import create_integration, csrf, htmx, login, query

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"demo-regnskapskontor", "demo-eget-selskap"}

pytestmark = pytest.mark.anyio


async def stored(settings: Settings) -> dict[int, str]:
    rows = await query(settings, "select id, key_ciphertext from integration order by id")
    return {integration_id: ciphertext for integration_id, ciphertext in rows}


async def rotate(settings: Settings, keys: tuple[str, ...], batch_size: int = 100) -> int:
    engine = create_engine(settings.database_url)
    try:
        return await rotate_keys(
            create_session_factory(engine), KeyVault(keys), batch_size=batch_size
        )
    finally:
        await engine.dispose()


async def three_integrations(client: AsyncTestClient) -> list[int]:
    first = await create_integration(client, "demo-regnskapskontor", "Klienter")
    return [
        first,
        await create_integration(client, "demo-eget-selskap", "Eget selskap"),
        await create_integration(
            client, "demo-regnskapskontor", "Klienter, kopi", same_key_as=first
        ),
    ]


async def test_rotation_moves_every_key_to_the_newest_and_the_app_runs_on_it_alone(
    client: AsyncTestClient, settings: Settings
) -> None:
    old = settings.encryption_keys[0]
    new = Fernet.generate_key().decode()
    ids = await three_integrations(client)
    before = await stored(settings)
    with pytest.raises(ValueError):  # not yet readable with the new key alone
        KeyVault((new,)).decrypt(before[ids[0]])

    # Batches of two: three rows take two transactions.
    assert await rotate(settings, (new, old), batch_size=2) == 3

    after = await stored(settings)
    assert after.keys() == before.keys()
    only_new = KeyVault((new,))
    for integration_id in ids:
        assert after[integration_id] != before[integration_id]
        assert only_new.decrypt(after[integration_id]) == KeyVault((old,)).decrypt(
            before[integration_id]
        )
    assert {only_new.decrypt(c) for c in after.values()} == KEYS

    # The app restarted with ENCRYPTION_KEY=new: Oppdater klientliste reaches Tripletex.
    restarted = dataclasses.replace(settings, encryption_keys=(new,))
    from app import create_app

    async with AsyncTestClient(create_app(restarted)) as fresh:
        await login(fresh, "regnskap@kontor-a.no")
        for integration_id in ids:
            response = await fresh.post(
                f"/integrasjoner/{integration_id}/oppdater", data={}, headers=htmx(fresh)
            )
            assert response.status_code == 200, response.text
            assert "Klientlisten er oppdatert" in response.text
            assert 'role="alert"' not in response.text


async def test_running_it_again_is_harmless(client: AsyncTestClient, settings: Settings) -> None:
    old = settings.encryption_keys[0]
    new = Fernet.generate_key().decode()
    ids = await three_integrations(client)

    assert await rotate(settings, (new, old)) == 3
    first = await stored(settings)
    assert await rotate(settings, (new, old), batch_size=1) == 3
    second = await stored(settings)
    # ...and once more after the old key is gone from ENCRYPTION_KEY.
    assert await rotate(settings, (new,)) == 3
    third = await stored(settings)

    only_new = KeyVault((new,))
    for integration_id in ids:
        plain = only_new.decrypt(first[integration_id])
        assert only_new.decrypt(second[integration_id]) == plain
        assert only_new.decrypt(third[integration_id]) == plain


async def test_an_integration_without_a_key_is_passed_over(
    client: AsyncTestClient, settings: Settings
) -> None:
    new = Fernet.generate_key().decode()
    files = await client.post(
        "/integrasjoner/ny",
        data={"system": "saft", "description": "Filer", "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert files.status_code == 303
    keyed = await create_integration(client)

    assert await rotate(settings, (new, settings.encryption_keys[0])) == 1
    after = await stored(settings)
    assert sorted(after.values())[0] == ""  # the files integration: still no key
    assert KeyVault((new,)).decrypt(after[keyed]) == "demo-regnskapskontor"


async def test_no_integrations_is_nothing_to_do(settings: Settings) -> None:
    assert await rotate(settings, (Fernet.generate_key().decode(),)) == 0


async def test_an_undecryptable_key_stops_rotation_and_changes_nothing(
    client: AsyncTestClient, settings: Settings
) -> None:
    old = settings.encryption_keys[0]
    new = Fernet.generate_key().decode()
    ids = await three_integrations(client)
    # The last row was encrypted with a key nobody configured any more (lost in a redeploy).
    lost = KeyVault((Fernet.generate_key().decode(),)).encrypt("demo-regnskapskontor")
    engine = create_engine(settings.database_url)
    try:
        async with open_session(create_session_factory(engine)) as db:
            await db.exec(
                update(Integration)
                .where(col(Integration.id) == ids[-1])
                .values(key_ciphertext=lost)
            )
    finally:
        await engine.dispose()
    before = await stored(settings)

    # One row per batch: without the check first, the rows before it would be rewritten.
    with pytest.raises(KeyRotationError) as caught:
        await rotate(settings, (new, old), batch_size=1)

    message = str(caught.value)
    assert f"integration {ids[-1]} " in message
    assert "ENCRYPTION_KEY" in message
    assert "Nothing was changed" in message
    assert caught.value.integration_ids == [ids[-1]]
    for secret in (*KEYS, old, new, lost):
        assert secret not in message
    assert await stored(settings) == before


async def test_a_key_changed_meanwhile_is_not_overwritten_with_the_old_one(
    client: AsyncTestClient, settings: Settings
) -> None:
    """Endre system saves a new key between rotation's read and its write."""
    from services.key_rotation import _rotate_row

    old = settings.encryption_keys[0]
    new = Fernet.generate_key().decode()
    integration_id, deleted_id, _ = await three_integrations(client)
    read = await stored(settings)
    changed = KeyVault((new, old)).encrypt("demo-eget-selskap")
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    try:
        async with open_session(factory) as db:
            await db.exec(
                update(Integration)
                .where(col(Integration.id) == integration_id)
                .values(key_ciphertext=changed)
            )
            await db.delete(await db.get(Integration, deleted_id))
        async with open_session(factory) as db:
            vault = KeyVault((new, old))
            assert await _rotate_row(db, vault, Integration, integration_id, read[integration_id])
            assert not await _rotate_row(db, vault, Integration, deleted_id, read[deleted_id])
    finally:
        await engine.dispose()
    after = await stored(settings)
    assert after[integration_id] != changed
    assert KeyVault((new,)).decrypt(after[integration_id]) == "demo-eget-selskap"
    assert deleted_id not in after


def cli_env(settings: Settings, encryption_key: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DEMO", "PUBLIC_BASE_URL", "TRIPLETEX_BASE_URL")
    }
    env.update(
        DATABASE_URL=settings.database_url,
        DATA_DIR=str(settings.data_dir),
        SECRET_KEY=settings.secret_key,
        ENCRYPTION_KEY=encryption_key,
        TRIPLETEX_CONSUMER_TOKEN="our-consumer-token",
        LOG_FORMAT="text",
    )
    return env


async def run_cli(settings: Settings, encryption_key: str, *args: str) -> tuple[int, str, str]:
    result = await anyio.run_process(
        [sys.executable, str(ROOT / "app.py"), "rotate-keys", *args],
        cwd=settings.data_dir,  # no .env from the working tree
        env=cli_env(settings, encryption_key),
        check=False,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_the_command_line_rotates_and_refuses_to_guess(
    client: AsyncTestClient, settings: Settings
) -> None:
    old = settings.encryption_keys[0]
    new = Fernet.generate_key().decode()
    ids = await three_integrations(client)
    before = await stored(settings)

    # Step (c) before step (b): the new key alone cannot read what is stored.
    code, out, err = await run_cli(settings, new)
    assert code == 1, (out, err)
    assert "Key rotation stopped" in err
    assert f"integrations {', '.join(map(str, ids))} " in err
    assert await stored(settings) == before
    printed = out + err

    # Step (b): both keys, newest first.
    code, out, err = await run_cli(settings, f"{new},{old}", "--batch-size", "2")
    assert code == 0, (out, err)
    assert "Re-encrypted 3 stored system keys" in out
    printed += out + err
    for secret in (*KEYS, old, new, *before.values()):
        assert secret not in printed
    after = await stored(settings)
    assert {KeyVault((new,)).decrypt(c) for c in after.values()} == KEYS
