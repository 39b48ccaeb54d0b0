"""Users and passwords. Hashes are argon2 (libpass); lookups are by e-mail.

argon2 takes a fifth of a second of CPU and 64 MB by design: it runs in a worker thread
(argon2-cffi releases the GIL), never on the event loop, which would stall every request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime

import anyio
from anyio import sleep
from passlib.hash import argon2
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Office, User
from models.base import utcnow
from models.office import Role
from services import login_throttle
from services.passwords import password_problem
from services.sessions import end_sessions_of
from services.settings import OidcConfig

log = logging.getLogger("erp.auth")

# Verifying against this when the e-mail is unknown keeps both paths equally slow.
_DUMMY_HASH = argon2.hash("not-a-real-password")
# At most this many argon2 runs at once (64 MB each): a burst of logins queues here instead
# of taking anyio's 40 worker threads and 2.5 GB.
_ARGON2_SLOTS = anyio.CapacityLimiter(4)
# Keys the tags that stand for unknown accounts in the log: what is typed into the e-mail
# field may be a password, and a plain hash of it could be tested against guesses.
_TAG_KEY = secrets.token_bytes(32)


# Each role may do everything the roles after it may.
_RANK = {Role.ADMINISTRATOR: 3, Role.ACCOUNTANT: 2, Role.READER: 1}


def role_allows(role: Role, needed: Role) -> bool:
    return _RANK[role] >= _RANK[needed]


@dataclass(frozen=True)
class CurrentUser:
    id: int
    email: str
    office_id: int
    office_name: str
    role: Role = Role.ADMINISTRATOR
    name: str = ""

    def may(self, needed: Role) -> bool:
        return role_allows(self.role, needed)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMINISTRATOR

    @property
    def can_change(self) -> bool:
        """Switches, bulk actions, syncs and imports (regnskapsfører and up)."""
        return self.may(Role.ACCOUNTANT)


def normalize_email(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class LoginLocked:
    """Too many failures: no password is checked until then. `fresh`: this attempt was
    checked, failed and brought the lock (else it was refused unchecked, already locked)."""

    until: datetime
    fresh: bool = False

    def message(self) -> str:
        minutes = max(1, math.ceil((self.until - utcnow()).total_seconds() / 60))
        wait = "1 minutt" if minutes == 1 else f"{minutes} minutter"
        return f"For mange mislykkede forsøk. Prøv igjen om {wait}."


@dataclass(frozen=True)
class SsoRequired:
    """The person's office has turned local passwords off (Innstillinger → Pålogging:
    everyone signs in through the identity provider). Said whether the password typed was
    right or not: it is not checked then."""

    provider_name: str

    def message(self) -> str:
        name = self.provider_name or "identitetsleverandøren"
        return (
            f"Kontoret ditt logger inn med {name}, ikke med passord. "
            f"Bruk knappen «Logg inn med {name}»."
        )


async def log_in(
    db: AsyncSession,
    email: str,
    password: str,
    address: str,
    *,
    signing_in: bool = False,
    oidc_config: OidcConfig | None = None,
) -> User | LoginLocked | SsoRequired | None:
    """The user, or None for a wrong e-mail or password, or the lock this or earlier
    failures brought (of the account or of the client address). `signing_in` (the login
    form, not a password re-check): SsoRequired when the e-mail's office allows no
    passwords and has a provider to sign in through (`oidc_config`: the operator's, which
    counts as the office's it applies to)."""
    email = normalize_email(email)
    attempt = await login_throttle.count_attempt(db, email, address)
    if isinstance(attempt, login_throttle.Locked):
        account = await _account_for_log(db, email)
        log.warning("login refused while locked: account=%s address=%s", account, address)
        return LoginLocked(attempt.until)
    if signing_in and (required := await _sso_required(db, email, oidc_config)):
        # Decided before the password is looked at, and as slow as checking it: the answer
        # must not tell whether a password nobody may use is right. Counted as a failure
        # (a success would clear the address's count too).
        await _verify(password, _DUMMY_HASH)
        locked = await _failed(db, email, address, attempt, "refused: single sign-on required")
        return locked or required
    user = await authenticate(db, email, password)
    if user is not None:
        await login_throttle.succeeded(db, email, address)
        return user
    return await _failed(db, email, address, attempt, "failed")


async def _failed(
    db: AsyncSession,
    email: str,
    address: str,
    attempt: login_throttle.Counted,
    what: str,
) -> LoginLocked | None:
    """A counted attempt that did not sign in: logged, paused as the count says, and the
    lock it brought, if any."""
    account = await _account_for_log(db, email)
    lock = attempt.lock.isoformat(timespec="seconds") if attempt.lock else "-"
    log.warning("login %s: account=%s address=%s locked_until=%s", what, account, address, lock)
    if attempt.delay:
        # The pause holds no database connection: a flood of failures must not drain the pool.
        await db.rollback()
        await sleep(attempt.delay)
    return LoginLocked(attempt.lock, fresh=True) if attempt.lock else None


async def _sso_required(
    db: AsyncSession, email: str, oidc_config: OidcConfig | None
) -> SsoRequired | None:
    office_id = (await db.exec(select(User.office_id).where(User.email == email))).first()
    return await office_sso_rule(db, office_id, oidc_config) if office_id is not None else None


async def office_sso_rule(
    db: AsyncSession, office_id: int, oidc_config: OidcConfig | None
) -> SsoRequired | None:
    """SsoRequired when the office requires single sign-on and has a provider switched on
    and complete (its own, or the operator's). Without one the rule is not in force: it
    would lock every person out, administrators too."""
    from services import oidc  # here: services.oidc imports services.audit, which imports this

    row = await oidc.signin_row(db, office_id)
    if row is None or not row.sso_required:
        return None
    if oidc.is_complete(row):
        return SsoRequired(row.oidc_display_name)
    if oidc_config is not None and await oidc.environment_office(db, oidc_config) == office_id:
        return SsoRequired(oidc_config.display_name)
    log.warning("office %s requires single sign-on but has no provider: passwords work", office_id)
    return None


async def _account_for_log(db: AsyncSession, email: str) -> str:
    """The e-mail address when it is a user's; otherwise a tag, the same for the same text
    in this process, because the text may be a password typed into the wrong field."""
    if (await db.exec(select(User.id).where(User.email == email))).first() is not None:
        return repr(email)
    tag = hmac.new(_TAG_KEY, email.encode(), hashlib.sha256).hexdigest()[:12]
    return f"unknown:{tag}"


async def authenticate(db: AsyncSession, email: str, password: str) -> User | None:
    """Checks the password only: callers facing the network go through `log_in`."""
    user = (await db.exec(select(User).where(User.email == normalize_email(email)))).first()
    if user is None or not user.active or not user.password_hash:
        # No such person, deactivated, or no local password: as slow as a wrong password.
        await _verify(password, _DUMMY_HASH)
        return None
    if not await _verify(password, user.password_hash):
        return None
    if argon2.needs_update(user.password_hash):
        user.password_hash = await hash_password(password)
        await db.commit()
    return user


async def _verify(password: str, password_hash: str) -> bool:
    return await anyio.to_thread.run_sync(
        _check_password, password, password_hash, limiter=_ARGON2_SLOTS
    )


def _check_password(password: str, password_hash: str) -> bool:
    """In a worker thread (tests count these)."""
    return argon2.verify(password, password_hash)


async def hash_password(password: str) -> str:
    return await anyio.to_thread.run_sync(argon2.hash, password, limiter=_ARGON2_SLOTS)


class PasswordChangeError(ValueError):
    """Refused, with the Norwegian message for the form field named."""

    def __init__(self, field: str, message: str, *, locked: bool = False) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.locked = locked  # too many wrong current passwords: wait


async def change_password(
    db: AsyncSession, user: CurrentUser, current: str, new: str, repeated: str, address: str
) -> None:
    """A new password for this user, and the end of all the user's sessions: the caller
    keeps the current one under a fresh id."""
    if problem := password_problem(new):
        raise PasswordChangeError("new", problem.norwegian)
    if new != repeated:
        raise PasswordChangeError("repeat", "Passordene er ikke like.")
    # Throttled as logins are: a stolen session must not become a way to guess the password.
    checked = await log_in(db, user.email, current, address)
    if isinstance(checked, LoginLocked):
        raise PasswordChangeError("current", checked.message(), locked=True)
    if checked is None or checked.id != user.id:
        raise PasswordChangeError("current", "Passordet er feil.")
    checked.password_hash = await hash_password(new)
    await end_sessions_of(db, user.id)
    from services import audit  # here: services.audit imports this module (CurrentUser)

    actor = audit.actor_of(user, address)
    audit.record(db, actor, "user.password", user.email, password=audit.CHANGED)
    await db.commit()
    log.info("password changed: account=%r address=%s", user.email, address)


async def load_current_user(db: AsyncSession, user_id: int) -> CurrentUser | None:
    """The signed-in person, or None when the account is gone or deactivated."""
    row = (
        await db.exec(
            select(User, Office).join(Office, Office.id == User.office_id).where(User.id == user_id)
        )
    ).first()
    if row is None:
        return None
    user, office = row
    assert user.id is not None and office.id is not None
    if not user.active:
        return None
    return CurrentUser(
        id=user.id,
        email=user.email,
        office_id=office.id,
        office_name=office.name,
        role=Role(user.role),
        name=user.name,
    )


async def create_user(
    db: AsyncSession,
    *,
    email: str,
    password: str,
    office_name: str,
    role: Role = Role.ADMINISTRATOR,
) -> User:
    """A user in the office of that name (created if new), with this role."""
    email = normalize_email(email)
    if "@" not in email:
        raise ValueError("e-mail address must contain @")
    if problem := password_problem(password):
        raise ValueError(f"password {problem.english}")
    if (await db.exec(select(User).where(User.email == email))).first():
        raise ValueError(f"a user with e-mail {email} already exists")
    return await _add_user(db, email=email, password=password, office_name=office_name, role=role)


async def ensure_demo_user(
    db: AsyncSession, *, email: str, password: str, office_name: str
) -> None:
    if (await db.exec(select(User).where(User.email == email))).first() is None:
        await _add_user(db, email=email, password=password, office_name=office_name)


async def _add_user(
    db: AsyncSession,
    *,
    email: str,
    password: str,
    office_name: str,
    role: Role = Role.ADMINISTRATOR,
) -> User:
    office = (await db.exec(select(Office).where(Office.name == office_name))).first()
    if office is None:
        office = Office(name=office_name)
        db.add(office)
        await db.flush()
    assert office.id is not None
    user = User(
        office_id=office.id,
        email=email,
        password_hash=await hash_password(password),
        role=role.value,
    )
    db.add(user)
    await db.commit()
    return user
