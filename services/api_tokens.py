"""API tokens of an office: created in Innstillinger → API-nøkler, shown once, kept hashed.

A token is `erpapi_` + 43 random URL-safe characters (256 bits). Only its SHA-256 is stored:
with that much entropy a plain hash cannot be brute-forced, and looking a token up stays one
indexed query per request (argon2 would cost ~50 ms on every API call). The log redaction
in services/logging_setup.py masks anything that looks like a token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models import ApiToken
from models.base import utcnow
from services import audit
from services.audit import Actor

TOKEN_PREFIX = "erpapi_"
MAX_NAME_LENGTH = 100
MAX_TOKENS_PER_OFFICE = 50
# last_used_at is written at most this often per token: not one write per API request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class TokenInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Caller:
    """Who an API request acts for: an office, through one token."""

    token_id: int
    office_id: int
    token_hash: str
    name: str = ""  # the token's name, as the audit log shows who acted
    reads_audit: bool = False  # may read /api/v1/audit

    @property
    def actor(self) -> Actor:
        return audit.token_actor(self.office_id, self.token_id, self.name)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def check_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise TokenInputError("name", "Gi nøkkelen et navn, f.eks. produktet som skal bruke den.")
    if len(name) > MAX_NAME_LENGTH:
        raise TokenInputError("name", f"Navnet kan ha høyst {MAX_NAME_LENGTH} tegn.")
    return name


def audit_target(token: ApiToken) -> str:
    return f"API-nøkkel: {token.name}"


async def create_token(
    db: AsyncSession, actor: Actor, raw_name: str, *, reads_audit: bool = False
) -> tuple[ApiToken, str]:
    """A new token; returns the row and the token itself, which is never shown again. The
    audit log has its name, never the token. `reads_audit`: it may read /api/v1/audit."""
    name = check_name(raw_name)
    live = await list_tokens(db, actor.office_id)
    if sum(1 for t in live if t.revoked_at is None) >= MAX_TOKENS_PER_OFFICE:
        raise TokenInputError(
            "name", f"Kontoret har allerede {MAX_TOKENS_PER_OFFICE} aktive nøkler."
        )
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        office_id=actor.office_id,
        name=name,
        prefix=raw[: len(TOKEN_PREFIX) + 4],
        token_hash=hash_token(raw),
        created_by=actor.label,
        reads_audit=reads_audit,
    )
    db.add(token)
    audit.record(
        db, actor, "api_token.created", audit_target(token), name=name, reads_audit=reads_audit
    )
    await db.commit()
    await db.refresh(token)
    return token, raw


async def list_tokens(db: AsyncSession, office_id: int) -> list[ApiToken]:
    """Active tokens first, newest first."""
    rows = await db.exec(
        select(ApiToken)
        .where(col(ApiToken.office_id) == office_id)
        .order_by(col(ApiToken.revoked_at).is_not(None), col(ApiToken.id).desc())
    )
    return list(rows.all())


async def revoke_token(db: AsyncSession, actor: Actor, token_id: int) -> ApiToken | None:
    """Trekk tilbake: the token stops working at once. None if it is not this office's."""
    token = await db.get(ApiToken, token_id)
    if token is None or token.office_id != actor.office_id:
        return None
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(db, actor, "api_token.revoked", audit_target(token), name=token.name)
        await db.commit()
        await db.refresh(token)
    return token


async def authenticate(db: AsyncSession, raw: str) -> Caller | None:
    """The caller a bearer token stands for; None for an unknown or revoked token."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    digest = hash_token(raw)
    token = (
        await db.exec(
            select(ApiToken).where(
                col(ApiToken.token_hash) == digest, col(ApiToken.revoked_at).is_(None)
            )
        )
    ).first()
    if token is None or token.id is None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        await db.exec(update(ApiToken).where(col(ApiToken.id) == token.id).values(last_used_at=now))
        await db.commit()
    return Caller(
        token_id=token.id,
        office_id=token.office_id,
        token_hash=digest,
        name=token.name,
        reads_audit=token.reads_audit,
    )
