"""Re-encrypting the stored system keys under the newest ENCRYPTION_KEY (`app.py rotate-keys`):
the integrations' keys and the clients' own keys (systems that give a key per client).

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

from models import Client, Integration
from services.crypto import KeyVault
from services.db import SessionFactory, open_session

BATCH_SIZE = 100
_ATTEMPTS = 3  # per row, when the app changes it between our read and our write


class KeyRotationError(RuntimeError):
    """Stored keys that no configured key decrypts. The message names the integrations (or
    clients, for keys kept per client) and never contains a key or a ciphertext."""

    def __init__(
        self, integration_ids: list[int], *, rotated: int = 0, owner: str = "integration"
    ) -> None:
        self.integration_ids = integration_ids
        self.rotated = rotated
        which = owner if len(integration_ids) == 1 else f"{owner}s"
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


# Where system keys are stored: each integration's, and each client's where the system
# gives a key per client (PowerOffice Go). An empty or missing one is no key (files).
KEY_TABLES: tuple[tuple[type[Integration] | type[Client], str], ...] = (
    (Integration, "integration"),
    (Client, "client"),
)


async def rotate_keys(
    session_factory: SessionFactory, vault: KeyVault, *, batch_size: int = BATCH_SIZE
) -> int:
    """Re-encrypt every stored system key (KEY_TABLES) under the vault's newest key.

    Returns how many were re-encrypted. Raises KeyRotationError, before writing anything,
    if a stored key cannot be decrypted with any of the vault's keys.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    for model, owner in KEY_TABLES:
        undecryptable = [
            row_id
            async for row_id, ciphertext in _all_rows(session_factory, model, batch_size)
            if not _decrypts(vault, ciphertext)
        ]
        if undecryptable:
            raise KeyRotationError(undecryptable, owner=owner)

    rotated = 0
    for model, owner in KEY_TABLES:
        last_id = 0
        while True:
            in_batch = 0
            try:
                async with open_session(session_factory) as db:  # one transaction per batch
                    rows = await _read_batch(db, model, last_id, batch_size)
                    for row_id, ciphertext in rows:
                        in_batch += await _rotate_row(db, vault, model, row_id, ciphertext)
            except KeyRotationError as exc:  # this batch was rolled back
                raise KeyRotationError(exc.integration_ids, rotated=rotated, owner=owner) from None
            rotated += in_batch
            if len(rows) < batch_size:
                break
            last_id = rows[-1][0]
    return rotated


def _decrypts(vault: KeyVault, ciphertext: str) -> bool:
    try:
        vault.decrypt(ciphertext)
    except ValueError:
        return False
    return True


async def _all_rows(
    session_factory: SessionFactory, model: type[Integration] | type[Client], batch_size: int
) -> AsyncIterator[tuple[int, str]]:
    last_id = 0
    while True:
        async with session_factory() as db:
            rows = await _read_batch(db, model, last_id, batch_size)
        for row in rows:
            yield row
        if len(rows) < batch_size:
            return
        last_id = rows[-1][0]


async def _read_batch(
    db: AsyncSession, model: type[Integration] | type[Client], last_id: int, batch_size: int
) -> list[tuple[int, str]]:
    result = await db.exec(
        select(model.id, model.key_ciphertext)
        # An integration that takes files has no key (""), nor has a client reached with its
        # integration's key (None): nothing to re-encrypt.
        .where(col(model.id) > last_id, col(model.key_ciphertext) != "")
        .order_by(col(model.id))
        .limit(batch_size)
    )
    return [(int(row_id), ciphertext) for row_id, ciphertext in result.all()]


async def _rotate_row(
    db: AsyncSession,
    vault: KeyVault,
    model: type[Integration] | type[Client],
    integration_id: int,
    ciphertext: str,
) -> bool:
    """Re-encrypt one row unless it changed under us; False if it was deleted meanwhile."""
    for _ in range(_ATTEMPTS):
        try:
            new_ciphertext = vault.rotate(ciphertext)
        except InvalidToken:  # replaced since the check by something we cannot read
            raise KeyRotationError([integration_id]) from None
        result = await db.exec(
            update(model)
            .where(col(model.id) == integration_id)
            .where(col(model.key_ciphertext) == ciphertext)
            .values(key_ciphertext=new_ciphertext)
        )
        if result.rowcount == 1:
            return True
        current = (
            await db.exec(select(model.key_ciphertext).where(col(model.id) == integration_id))
        ).first()
        if current is None:
            return False
        ciphertext = current
    raise RuntimeError(f"integration {integration_id} kept changing during key rotation; run again")
