"""Users and passwords. Hashes are argon2 (libpass); lookups are by e-mail."""

from __future__ import annotations

from dataclasses import dataclass

from passlib.hash import argon2
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Office, User

# Verifying against this when the e-mail is unknown keeps both paths equally slow.
_DUMMY_HASH = argon2.hash("not-a-real-password")


@dataclass(frozen=True)
class CurrentUser:
    id: int
    email: str
    office_id: int
    office_name: str


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def authenticate(db: AsyncSession, email: str, password: str) -> User | None:
    user = (await db.exec(select(User).where(User.email == normalize_email(email)))).first()
    if user is None:
        argon2.verify(password, _DUMMY_HASH)
        return None
    if not argon2.verify(password, user.password_hash):
        return None
    if argon2.needs_update(user.password_hash):
        user.password_hash = argon2.hash(password)
        await db.commit()
    return user


async def load_current_user(db: AsyncSession, user_id: int) -> CurrentUser | None:
    row = (
        await db.exec(
            select(User, Office).join(Office, Office.id == User.office_id).where(User.id == user_id)
        )
    ).first()
    if row is None:
        return None
    user, office = row
    assert user.id is not None and office.id is not None
    return CurrentUser(id=user.id, email=user.email, office_id=office.id, office_name=office.name)


async def create_user(db: AsyncSession, *, email: str, password: str, office_name: str) -> User:
    """A user in the office of that name (created if new)."""
    email = normalize_email(email)
    if "@" not in email:
        raise ValueError("e-mail address must contain @")
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    if (await db.exec(select(User).where(User.email == email))).first():
        raise ValueError(f"a user with e-mail {email} already exists")
    return await _add_user(db, email=email, password=password, office_name=office_name)


async def ensure_demo_user(
    db: AsyncSession, *, email: str, password: str, office_name: str
) -> None:
    if (await db.exec(select(User).where(User.email == email))).first() is None:
        await _add_user(db, email=email, password=password, office_name=office_name)


async def _add_user(db: AsyncSession, *, email: str, password: str, office_name: str) -> User:
    office = (await db.exec(select(Office).where(Office.name == office_name))).first()
    if office is None:
        office = Office(name=office_name)
        db.add(office)
        await db.flush()
    assert office.id is not None
    user = User(office_id=office.id, email=email, password_hash=argon2.hash(password))
    db.add(user)
    await db.commit()
    return user
