"""Re-encrypting the stored system keys under the newest ENCRYPTION_KEY (`app.py rotate-keys`).

Zero downtime: deploy with ENCRYPTION_KEY="new,old", run this, deploy with ENCRYPTION_KEY="new".

First every stored key is checked against the configured keys, so that a key none of them
decrypts stops the rotation before anything is written. Then the keys are re-encrypted in
batches, each batch in its own short transaction, so the running app is never held up for
long. A row is written only if it still holds the ciphertext that was read: a key the app
changes meanwhile (Endre system) is read again, never overwritten with the old one. Running
it again is harmless: every key is re-encrypted under the newest key once more.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from cryptography.fernet import InvalidToken
from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Integration
from services.crypto import KeyVault
from services.db import SessionFactory, open_session

BATCH_SIZE = 100
_ATTEMPTS = 3  # per row, when the app changes it between our read and our write


class KeyRotationError(RuntimeError):
    """Stored keys that no configured key decrypts. The message names the integrations and
    never contains a key or a ciphertext."""

    def __init__(self, integration_ids: list[int], *, rotated: int = 0) -> None:
        self.integration_ids = integration_ids
        self.rotated = rotated
        which = "integration" if len(integration_ids) == 1 else "integrations"
        ids = ", ".join(str(i) for i in integration_ids)
        if rotated:
            done = (
                f"{rotated} keys had already been re-encrypted; they are valid under the "
                "newest key, and the rest are unchanged."
            )
        else:
            done = "Nothing was changed."
        super().__init__(
            f"The stored system key of {which} {ids} cannot be decrypted with any key in "
            f"ENCRYPTION_KEY. {done} Add the key it was encrypted with to ENCRYPTION_KEY "
            "(comma-separated, newest first) and run rotate-keys again."
        )


async def rotate_keys(
    session_factory: SessionFactory, vault: KeyVault, *, batch_size: int = BATCH_SIZE
) -> int:
    """Re-encrypt every Integration.key_ciphertext under the vault's newest key.

    Returns how many were re-encrypted. Raises KeyRotationError, before writing anything,
    if a stored key cannot be decrypted with any of the vault's keys.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    undecryptable = [
        integration_id
        async for integration_id, ciphertext in _all_rows(session_factory, batch_size)
        if not _decrypts(vault, ciphertext)
    ]
    if undecryptable:
        raise KeyRotationError(undecryptable)

    rotated = 0
    last_id = 0
    while True:
        in_batch = 0
        try:
            async with open_session(session_factory) as db:  # one transaction per batch
                rows = await _read_batch(db, last_id, batch_size)
                for integration_id, ciphertext in rows:
                    in_batch += await _rotate_row(db, vault, integration_id, ciphertext)
        except KeyRotationError as exc:  # this batch was rolled back
            raise KeyRotationError(exc.integration_ids, rotated=rotated) from None
        rotated += in_batch
        if len(rows) < batch_size:
            return rotated
        last_id = rows[-1][0]


def _decrypts(vault: KeyVault, ciphertext: str) -> bool:
    try:
        vault.decrypt(ciphertext)
    except ValueError:
        return False
    return True


async def _all_rows(
    session_factory: SessionFactory, batch_size: int
) -> AsyncIterator[tuple[int, str]]:
    last_id = 0
    while True:
        async with session_factory() as db:
            rows = await _read_batch(db, last_id, batch_size)
        for row in rows:
            yield row
        if len(rows) < batch_size:
            return
        last_id = rows[-1][0]


async def _read_batch(db: AsyncSession, last_id: int, batch_size: int) -> list[tuple[int, str]]:
    result = await db.exec(
        select(Integration.id, Integration.key_ciphertext)
        # An integration that takes files has no key ("") to re-encrypt.
        .where(col(Integration.id) > last_id, col(Integration.key_ciphertext) != "")
        .order_by(col(Integration.id))
        .limit(batch_size)
    )
    return [(int(integration_id), ciphertext) for integration_id, ciphertext in result.all()]


async def _rotate_row(
    db: AsyncSession, vault: KeyVault, integration_id: int, ciphertext: str
) -> bool:
    """Re-encrypt one row unless it changed under us; False if it was deleted meanwhile."""
    for _ in range(_ATTEMPTS):
        try:
            new_ciphertext = vault.rotate(ciphertext)
        except InvalidToken:  # replaced since the check by something we cannot read
            raise KeyRotationError([integration_id]) from None
        result = await db.exec(
            update(Integration)
            .where(col(Integration.id) == integration_id)
            .where(col(Integration.key_ciphertext) == ciphertext)
            .values(key_ciphertext=new_ciphertext)
        )
        if result.rowcount == 1:
            return True
        current = (
            await db.exec(
                select(Integration.key_ciphertext).where(col(Integration.id) == integration_id)
            )
        ).first()
        if current is None:
            return False
        ciphertext = current
    raise RuntimeError(f"integration {integration_id} kept changing during key rotation; run again")
