"""The second factor: time-based codes (TOTP, RFC 6238, through pyotp) and single-use
recovery codes.

The secret is kept encrypted with the key vault together with the last time step a code was
accepted for (plaintext "SECRET:STEP"; base32 has no colon). A code whose step is not later
than that is refused, so a code seen over someone's shoulder cannot be used again within
its window; the new step is written only over the very ciphertext that was read
(compare-and-swap), so two requests bringing the same code cannot both pass.

Recovery codes are kept as sha256 hashes only; using one marks it used in one UPDATE that
matches only an unused code. Wrong codes at sign-in and when switching the factor off are
throttled by services/login_throttle.py, counted against `throttle_subject(user)`: a correct
password clears the count of the e-mail, never this one, so guesses at the code add up.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
from anyio import sleep
from sqlalchemy import delete, func, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import RecoveryCode, SigninSettings, User
from models.base import utcnow
from services import audit, login_throttle
from services.auth import LoginLocked, log_in
from services.crypto import KeyVault

log = logging.getLogger("erp.totp")

ISSUER = "ERP-integrasjon"  # the name the authenticator app shows beside the account
DIGITS = 6
VALID_WINDOW = 1  # a step either side: a phone's clock a little off
RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: read off paper without doubt.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 10  # ~50 bits each

APP, RECOVERY = "app", "gjenopprettingskode"  # how a code step was passed (audit details)


@dataclass(frozen=True)
class Setup:
    """A secret waiting for its first code: shown to the person, never after."""

    secret: str
    uri: str  # otpauth://, which a phone opens in its authenticator app

    @property
    def grouped(self) -> str:
        """The secret in groups of four, as it is typed into an app by hand."""
        return " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4))


@dataclass(frozen=True)
class CodeLocked:
    """Too many wrong codes (or passwords): nothing is checked until then."""

    locked: LoginLocked

    def message(self) -> str:
        return self.locked.message()


class TotpError(ValueError):
    """Refused, with the Norwegian message to show."""

    def __init__(self, message: str, *, locked: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.locked = locked


def throttle_subject(user: User) -> str:
    return f"tofaktor:{user.id}"


def has_local_password(user: User) -> bool:
    return bool(user.password_hash)


async def required_by_office(db: AsyncSession, office_id: int) -> bool:
    """Whether the office requires the second factor (no settings row: not required)."""
    required = (
        await db.exec(
            select(SigninSettings.totp_required).where(col(SigninSettings.office_id) == office_id)
        )
    ).first()
    return bool(required)


# -- the secret --------------------------------------------------------------------------


def _seal(vault: KeyVault, secret: str, last_step: int | None) -> str:
    return vault.encrypt(secret if last_step is None else f"{secret}:{last_step}")


def _unseal(vault: KeyVault, ciphertext: str) -> tuple[str, int | None]:
    secret, _, step = vault.decrypt(ciphertext).partition(":")
    return secret, int(step) if step else None


def _setup_of(user: User, secret: str) -> Setup:
    uri = pyotp.TOTP(secret, digits=DIGITS).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return Setup(secret=secret, uri=uri)


async def start_setup(db: AsyncSession, vault: KeyVault, user: User) -> Setup:
    """A new secret for `user`, pending until a code from it is confirmed (it replaces any
    pending one). Refused once the factor is on: it is switched off first."""
    if user.totp_enabled_at is not None:
        raise TotpError("Tofaktor er allerede slått på.")
    secret = pyotp.random_base32()  # 32 characters, 160 bits
    user.totp_secret_ciphertext = _seal(vault, secret, None)
    db.add(user)
    await db.commit()
    return _setup_of(user, secret)


def pending_setup(vault: KeyVault, user: User) -> Setup | None:
    """The secret waiting for its first code, if there is one (never an enabled one)."""
    if user.totp_enabled_at is not None or not user.totp_secret_ciphertext:
        return None
    return _setup_of(user, _unseal(vault, user.totp_secret_ciphertext)[0])


def _normalise_code(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _is_app_code(code: str) -> bool:
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def _step_of(secret: str, code: str, now: datetime) -> int | None:
    """The time step (of those in the window around now) that `code` is the code of."""
    totp = pyotp.TOTP(secret, digits=DIGITS)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


async def _use_app_code(db: AsyncSession, vault: KeyVault, user: User, code: str) -> bool:
    """Whether `code` is the app's code for now and not used before; if so, its step is
    stored as used (in this transaction: the caller commits)."""
    stored = user.totp_secret_ciphertext
    if not stored or not _is_app_code(code):
        return False
    secret, last_step = _unseal(vault, stored)
    step = _step_of(secret, code, utcnow())
    if step is None or (last_step is not None and step <= last_step):
        return False
    sealed = _seal(vault, secret, step)
    result = await db.exec(  # type: ignore[call-overload]
        update(User)
        .where(col(User.id) == user.id, col(User.totp_secret_ciphertext) == stored)
        .values(totp_secret_ciphertext=sealed)
    )
    if result.rowcount != 1:  # another request used a code meanwhile
        return False
    set_committed_value(user, "totp_secret_ciphertext", sealed)
    return True


# -- recovery codes ------------------------------------------------------------------------


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(_normalise_code(code).encode()).hexdigest()


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
    half = _RECOVERY_LENGTH // 2
    return f"{raw[:half]}-{raw[half:]}"


async def _replace_recovery_codes(db: AsyncSession, user_id: int) -> list[str]:
    """Ten new codes in place of all earlier ones (the caller commits)."""
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user_id))  # type: ignore[call-overload]
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.add_all(RecoveryCode(user_id=user_id, code_hash=_recovery_hash(code)) for code in codes)
    return codes


async def _use_recovery_code(db: AsyncSession, user_id: int, code: str) -> bool:
    if len(_normalise_code(code)) != _RECOVERY_LENGTH:
        return False
    result = await db.exec(  # type: ignore[call-overload]
        update(RecoveryCode)
        .where(
            col(RecoveryCode.user_id) == user_id,
            col(RecoveryCode.code_hash) == _recovery_hash(code),
            col(RecoveryCode.used_at).is_(None),
        )
        .values(used_at=utcnow())
    )
    return bool(result.rowcount == 1)


async def recovery_codes_left(db: AsyncSession, user_id: int) -> int:
    return (
        await db.exec(
            select(func.count())
            .select_from(RecoveryCode)
            .where(col(RecoveryCode.user_id) == user_id, col(RecoveryCode.used_at).is_(None))
        )
    ).one()


# -- switching on and off ------------------------------------------------------------------


async def confirm_setup(
    db: AsyncSession, vault: KeyVault, user: User, code: str, actor: audit.Actor
) -> list[str]:
    """Switches the factor on once `code` is the pending secret's code; returns the new
    recovery codes, to be shown once."""
    if user.totp_enabled_at is not None or not user.totp_secret_ciphertext:
        raise TotpError("Start oppsettet på nytt.")
    if not await _use_app_code(db, vault, user, _normalise_code(code)):
        raise TotpError(
            "Feil kode. Skriv inn de seks sifrene appen viser nå, og sjekk at klokken på "
            "telefonen går riktig."
        )
    assert user.id is not None
    user.totp_enabled_at = utcnow()
    db.add(user)
    codes = await _replace_recovery_codes(db, user.id)
    audit.record(db, actor, "user.totp", user.email, enabled={"before": False, "after": True})
    await db.commit()
    log.info("second factor on: account=%r", user.email)
    return codes


async def new_recovery_codes(db: AsyncSession, user: User, actor: audit.Actor) -> list[str]:
    if user.totp_enabled_at is None or user.id is None:
        raise TotpError("Tofaktor er ikke slått på.")
    codes = await _replace_recovery_codes(db, user.id)
    audit.record(db, actor, "user.totp", user.email, recovery_codes=audit.CHANGED)
    await db.commit()
    log.info("new recovery codes: account=%r", user.email)
    return codes


async def switch_off(
    db: AsyncSession, vault: KeyVault, user: User, proof: str, actor: audit.Actor
) -> None:
    """Off, given the app's current code or the password (both throttled as at sign-in)."""
    if user.totp_enabled_at is None or user.id is None:
        raise TotpError("Tofaktor er ikke slått på.")
    proof = proof.strip()
    if _is_app_code(_normalise_code(proof)):
        checked = await check_code(db, vault, user, proof, actor.address, recovery=False)
        if isinstance(checked, CodeLocked):
            raise TotpError(checked.message(), locked=True)
        if checked is None:
            raise TotpError("Feil kode eller passord.")
    else:
        by_password = await log_in(db, user.email, proof, actor.address)
        if isinstance(by_password, LoginLocked):
            raise TotpError(by_password.message(), locked=True)
        if by_password is None or by_password.id != user.id:
            raise TotpError("Feil kode eller passord.")
    user.totp_secret_ciphertext = None
    user.totp_enabled_at = None
    db.add(user)
    await db.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))  # type: ignore[call-overload]
    audit.record(db, actor, "user.totp", user.email, enabled={"before": True, "after": False})
    await db.commit()
    log.info("second factor off: account=%r", user.email)


# -- the code step at sign-in --------------------------------------------------------------


async def check_code(
    db: AsyncSession,
    vault: KeyVault,
    user: User,
    code: str,
    address: str,
    *,
    recovery: bool = True,
) -> str | CodeLocked | None:
    """How the code passed (APP or RECOVERY), None for a wrong one, or the lock that this
    or earlier wrong codes brought. Counted and throttled as passwords are."""
    subject = throttle_subject(user)
    attempt = await login_throttle.count_attempt(db, subject, address)
    if isinstance(attempt, login_throttle.Locked):
        await db.refresh(user)  # the throttle's rollback expired it; the caller reads on
        log.warning("code refused while locked: account=%r address=%s", user.email, address)
        return CodeLocked(LoginLocked(attempt.until))
    assert user.id is not None
    normalised = _normalise_code(code)
    passed: str | None = None
    if await _use_app_code(db, vault, user, normalised):
        passed = APP
    elif recovery and await _use_recovery_code(db, user.id, normalised):
        passed = RECOVERY
    if passed is not None:
        await db.commit()
        await login_throttle.succeeded(db, subject, address)
        return passed
    lock = attempt.lock.isoformat(timespec="seconds") if attempt.lock else "-"
    log.warning("wrong code: account=%r address=%s locked_until=%s", user.email, address, lock)
    # Nothing was written; ending the transaction keeps the pause from holding a connection
    # (a commit, not a rollback: that would expire `user`, which the caller reads on).
    await db.commit()
    if attempt.delay:
        await sleep(attempt.delay)
    return CodeLocked(LoginLocked(attempt.lock, fresh=True)) if attempt.lock else None
