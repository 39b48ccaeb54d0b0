"""The office's people (Innstillinger → Brukere): the list, a changed role, deactivating and
reactivating. Each change is committed with its audit record.

An office always keeps an active administrator: the last one can be neither demoted nor
deactivated. Before counting the others, the change writes to the office's row (`lock_office`:
PostgreSQL's row lock, SQLite's write lock, both held until commit), so two administrators
demoting each other at once are counted one after the other: the second is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Office, User
from models.office import Role
from services import audit
from services.audit import Actor
from services.sessions import end_sessions_of


class UserChangeError(ValueError):
    """Refused, with the Norwegian message for the person's row."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Person:
    """A row of the list."""

    id: int
    name: str
    email: str
    role: Role
    active: bool
    password: bool  # has a local password
    sso: bool  # has signed in through the identity provider
    totp: bool
    last_login_at: datetime | None

    @property
    def status(self) -> str:
        return "Aktiv" if self.active else "Deaktivert"

    @property
    def signin(self) -> str:
        if self.sso and self.password:
            return "Passord og identitetsleverandør"
        if self.sso:
            return "Identitetsleverandør"
        return "Passord" if self.password else "Ingen ennå"


def person(user: User) -> Person:
    assert user.id is not None
    return Person(
        id=user.id,
        name=user.name,
        email=user.email,
        role=Role(user.role),
        active=user.active,
        password=bool(user.password_hash),
        sso=user.oidc_subject is not None,
        totp=user.totp_enabled_at is not None,
        last_login_at=user.last_login_at,
    )


async def list_people(db: AsyncSession, office_id: int) -> list[Person]:
    """Active people first, then by name (or e-mail where no name is set)."""
    rows = await db.exec(select(User).where(col(User.office_id) == office_id))
    people = [person(user) for user in rows.all()]
    return sorted(people, key=lambda p: (not p.active, (p.name or p.email).casefold(), p.id))


async def get_person(db: AsyncSession, office_id: int, user_id: int) -> Person | None:
    user = await _user(db, office_id, user_id)
    return person(user) if user else None


async def _user(db: AsyncSession, office_id: int, user_id: int) -> User | None:
    return (
        await db.exec(select(User).where(col(User.id) == user_id, col(User.office_id) == office_id))
    ).first()


async def lock_office(db: AsyncSession, office_id: int) -> None:
    """Holds the office's row for writing until the transaction ends: a no-op UPDATE takes
    PostgreSQL's row lock and SQLite's write lock (SELECT … FOR UPDATE is nothing on SQLite,
    whose reads run before its transaction begins). Others doing the same wait here."""
    await db.exec(  # type: ignore[call-overload]
        update(Office).where(col(Office.id) == office_id).values(name=Office.name)
    )


async def other_administrators(db: AsyncSession, office_id: int, user_id: int) -> int:
    """How many active administrators the office has besides this person, counted under
    the office's lock (held until the caller commits or rolls back)."""
    await lock_office(db, office_id)
    rows = await db.exec(
        select(User.id).where(
            col(User.office_id) == office_id,
            col(User.role) == Role.ADMINISTRATOR.value,
            col(User.active).is_(True),
        )
    )
    return sum(1 for found in rows.all() if found != user_id)


async def _others(db: AsyncSession, actor: Actor, user_id: int) -> int:
    return await other_administrators(db, actor.office_id, user_id)


def _last_admin(user: User, what: str) -> UserChangeError:
    who = user.name or user.email
    return UserChangeError(
        f"{who} er den siste aktive administratoren og kan ikke {what}. "
        "Gi en annen bruker rollen Administrator først."
    )


async def change_role(db: AsyncSession, actor: Actor, user_id: int, raw_role: str) -> Person | None:
    """A new role, in effect from the person's next request. None: no such person here."""
    try:
        role = Role(raw_role)
    except ValueError:
        raise UserChangeError("Velg en rolle.") from None
    user = await _user(db, actor.office_id, user_id)
    if user is None:
        return None
    before = Role(user.role)
    if role == before:
        return person(user)
    if before == Role.ADMINISTRATOR and user.active and not await _others(db, actor, user_id):
        refused = _last_admin(user, "få en annen rolle")
        await db.rollback()  # the lock
        raise refused
    user.role = role.value
    audit.record(db, actor, "user.role", user.email, before=before.norwegian, after=role.norwegian)
    await db.commit()
    await db.refresh(user)
    return person(user)


async def deactivate(db: AsyncSession, actor: Actor, user_id: int) -> Person | None:
    """The person can no longer sign in, and every session of theirs ends at once."""
    user = await _user(db, actor.office_id, user_id)
    if user is None:
        return None
    if user.id == actor.user_id:
        raise UserChangeError("Du kan ikke deaktivere deg selv.")
    if not user.active:
        return person(user)
    if user.role == Role.ADMINISTRATOR.value and not await _others(db, actor, user_id):
        refused = _last_admin(user, "deaktiveres")
        await db.rollback()  # the lock
        raise refused
    user.active = False
    await end_sessions_of(db, user_id)
    audit.record(db, actor, "user.deactivated", user.email, role=Role(user.role).norwegian)
    await db.commit()
    await db.refresh(user)
    return person(user)


async def reactivate(db: AsyncSession, actor: Actor, user_id: int) -> Person | None:
    user = await _user(db, actor.office_id, user_id)
    if user is None:
        return None
    if user.active:
        return person(user)
    user.active = True
    audit.record(db, actor, "user.reactivated", user.email, role=Role(user.role).norwegian)
    await db.commit()
    await db.refresh(user)
    return person(user)
