"""Signing in with a password, step by step, and the sign-in events of the audit log.

A correct password for a person with the second factor on does not sign in: the session
holds only a `Pending` ("the password was right for user X at time T") until the code step
passes, within CODE_FOR. A person whose office requires the factor and who has none is
sent to set it up (within SETUP_FOR: an app may have to be installed first) and signed in
when a first code is confirmed. Only then does the session get its user_id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import User
from models.base import utcnow
from services import audit, totp
from services.auth import LoginLocked, normalize_email

SESSION_KEY = "signin_pending"
CODE, SETUP = "code", "setup"  # the step a pending sign-in waits for
CODE_FOR = timedelta(minutes=5)
SETUP_FOR = timedelta(minutes=15)

PASSWORD = "passord"  # the method of a sign-in, as the log shows it
WRONG_PASSWORD, WRONG_CODE = "feil passord", "feil kode"
# The failure that brought a lock (those refused while locked are not recorded: a flood of
# them would bury the log, and the one that locked it says what happened).
WRONG_PASSWORD_LOCKED = "passord avvist, nå låst for nye forsøk"
WRONG_CODE_LOCKED = "feil kode, nå låst for nye forsøk"
SSO_REQUIRED = "passord avslått: kontoret krever innlogging via leverandøren"


@dataclass(frozen=True)
class Pending:
    user_id: int
    at: datetime
    step: str

    def as_session(self) -> dict[str, Any]:
        return {SESSION_KEY: {"user": self.user_id, "at": self.at.timestamp(), "step": self.step}}

    @classmethod
    def of_session(cls, session: dict[str, Any] | None, step: str) -> Pending | None:
        """The pending sign-in the session holds for `step`, if it has not run out."""
        data = (session or {}).get(SESSION_KEY)
        if not isinstance(data, dict) or data.get("step") != step:
            return None
        user_id, at = data.get("user"), data.get("at")
        if not isinstance(user_id, int) or not isinstance(at, int | float):
            return None
        started = datetime.fromtimestamp(at, UTC)
        limit = CODE_FOR if step == CODE else SETUP_FOR
        if not started <= utcnow() < started + limit:
            return None
        return cls(user_id, started, step)


async def second_step(db: AsyncSession, user: User) -> str | None:
    """What a correct password still leaves to do: CODE, SETUP, or nothing."""
    if user.totp_enabled_at is not None:
        return CODE
    if await totp.required_by_office(db, user.office_id):
        return SETUP
    return None


async def pending_user(db: AsyncSession, pending: Pending) -> User | None:
    user = await db.get(User, pending.user_id)
    return user if user is not None and user.active else None


def actor_of(user: User, address: str) -> audit.Actor:
    assert user.id is not None
    return audit.Actor(office_id=user.office_id, label=user.email, user_id=user.id, address=address)


async def signed_in(db: AsyncSession, user: User, address: str, second_factor: str) -> None:
    """Records the sign-in (`second_factor`: totp.APP, totp.RECOVERY or "nei")."""
    user.last_login_at = utcnow()
    db.add(user)
    audit.record(
        db, actor_of(user, address), "signin", method=PASSWORD, second_factor=second_factor
    )
    await db.commit()


async def failed(db: AsyncSession, who: User | str, address: str, reason: str) -> None:
    """Records a failed sign-in to a known account, by nobody known (audit.attempt_actor):
    whoever typed it may not be its owner, so the person filter does not show it as theirs.
    An unknown e-mail belongs to no office, so there is no log to put it in (the
    application log has it, as a tag)."""
    user = who if isinstance(who, User) else await _user_by_email(db, who)
    if user is None:
        return
    actor = audit.attempt_actor(user.office_id, user.email, address)
    audit.record(db, actor, "signin.failed", user.email, reason=reason)
    await db.commit()


def locked_reason(locked: LoginLocked, reason: str) -> str | None:
    """What a refused attempt records: the failure that brought the lock, or None for one
    refused unchecked while already locked (not recorded)."""
    if not locked.fresh:
        return None
    return WRONG_CODE_LOCKED if reason == WRONG_CODE else WRONG_PASSWORD_LOCKED


async def signed_out(db: AsyncSession, user_id: int, address: str) -> None:
    user = await db.get(User, user_id)
    if user is None:
        return
    audit.record(db, actor_of(user, address), "signout")
    await db.commit()


async def _user_by_email(db: AsyncSession, email: str) -> User | None:
    return (await db.exec(select(User).where(User.email == normalize_email(email)))).first()
