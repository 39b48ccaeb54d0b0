"""Failed-login throttle, per account (the e-mail typed, known or not) and per client address.

From the DELAY_FROM-th failure with no quiet WINDOW between them, each failure is answered
only after a pause (DELAYS, growing). After THRESHOLD failures, each further failure locks the
account (or address) for FIRST_LOCK, doubling up to LONGEST_LOCK. While locked, no password
is checked at all, the right one included.

An attempt is counted before its password is checked and taken back if it succeeds: counted
afterwards, twenty attempts sent at once would all be checked before the first one failed.
The count and the lock are written in one transaction that holds both rows (PostgreSQL's row
locks, SQLite's write lock), so concurrent attempts on several app processes are counted one
after the other.

An IPv6 address is counted by its /64: one host (one customer line) is handed a whole /64
and can send from any address in it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Insert, Table, and_, bindparam, case, delete, or_, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models import LoginThrottle
from models.base import utcnow
from services.db import upsert

ACCOUNT, ADDRESS = "account", "address"
# An office behind one NAT address shares its count, so the address gets more room.
THRESHOLD = {ACCOUNT: 5, ADDRESS: 20}
WINDOW = timedelta(minutes=15)
FIRST_LOCK = timedelta(minutes=1)
LONGEST_LOCK = timedelta(minutes=15)
# Seconds a failure waits before its answer: the DELAY_FROM-th failure of an account or an
# address the first, each further one the next, the last repeated. (Tests shrink it.)
DELAY_FROM = 3
DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0, 5.0)
KEPT = timedelta(days=1)  # rows quiet this long are forgotten by the nightly job
THROTTLE = LoginThrottle.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Locked:
    """Refused unchecked: the account or the address is locked until then."""

    until: datetime


@dataclass(frozen=True)
class Counted:
    """May be checked; counted as a failure until `succeeded` takes it back. `lock` is when
    the lock this failure brings ends (None: no lock yet); `delay`, the seconds it waits
    before its answer should it fail."""

    lock: datetime | None
    delay: float = 0.0


async def count_attempt(db: AsyncSession, account: str, address: str) -> Locked | Counted:
    now = utcnow()
    address = address_key(address)
    lock: datetime | None = None
    delay = 0.0
    # Always the address first: concurrent attempts take the row locks in one order.
    for kind, subject in ((ADDRESS, address), (ACCOUNT, account)):
        row = {"row_kind": kind, "row_subject": subject}
        failures = (
            await db.exec(  # type: ignore[call-overload]
                upsert(db, _count), params={**row, "now": now, "quiet_since": now - WINDOW}
            )
        ).scalar()
        if failures is None:  # locked: nothing of this attempt counts
            until = (await db.exec(_LOCKED_UNTIL, params=row)).scalar_one()  # type: ignore[call-overload]
            await db.rollback()
            return Locked(until)
        delay = max(delay, delay_after(failures))
        if failures >= THRESHOLD[kind]:
            until = now + lock_duration(failures - THRESHOLD[kind])
            await db.exec(_LOCK, params={**row, "lock_until": until})  # type: ignore[call-overload]
            lock = max(lock, until) if lock else until
    await db.commit()
    return Counted(lock, delay)


async def succeeded(db: AsyncSession, account: str, address: str) -> None:
    """The password was right: the account starts afresh, and the address's count loses
    this attempt only (an attacker's own account must not clear the address's count)."""
    address = address_key(address)
    await db.exec(  # type: ignore[call-overload]
        delete(THROTTLE).where(THROTTLE.c.kind == ACCOUNT, THROTTLE.c.subject == account)
    )
    failures = THROTTLE.c.failures
    await db.exec(  # type: ignore[call-overload]
        update(THROTTLE)
        .where(THROTTLE.c.kind == ADDRESS, THROTTLE.c.subject == address, failures > 0)
        .values(
            failures=failures - 1,
            locked_until=case(
                (failures - 1 < THRESHOLD[ADDRESS], None), else_=THROTTLE.c.locked_until
            ),
        )
    )
    await db.commit()


def address_key(address: str) -> str:
    """The client address as counted: an IPv6 address by its /64, an IPv4-mapped one as
    the IPv4 address it is; anything else (no address known) as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def delay_after(failures: int) -> float:
    """Seconds the answer to this many failures in a row waits."""
    if failures < DELAY_FROM or not DELAYS:
        return 0.0
    return DELAYS[min(failures - DELAY_FROM, len(DELAYS) - 1)]


def lock_duration(failures_over_threshold: int) -> timedelta:
    return min(FIRST_LOCK * 2 ** min(failures_over_threshold, 10), LONGEST_LOCK)


async def forget_quiet(db: AsyncSession) -> None:
    """For the nightly job: rows a day without failures guard nothing any more."""
    await db.exec(  # type: ignore[call-overload]
        delete(THROTTLE).where(THROTTLE.c.last_failure_at < utcnow() - KEPT)
    )


def _count(insert: Callable[[Table], Insert]) -> Insert:
    """One more failure, returning the count; no row when a lock holds. A quiet WINDOW since
    the last failure and since the lock ended starts the count afresh."""
    c = THROTTLE.c
    now = bindparam("now", type_=c.last_failure_at.type)
    quiet_since = bindparam("quiet_since", type_=c.last_failure_at.type)
    quiet = and_(
        c.last_failure_at < quiet_since,
        or_(c.locked_until.is_(None), c.locked_until < quiet_since),
    )
    statement = insert(THROTTLE).values(
        kind=bindparam("row_kind"),
        subject=bindparam("row_subject"),
        failures=1,
        last_failure_at=now,
    )
    return statement.on_conflict_do_update(  # type: ignore[attr-defined, no-any-return]
        index_elements=[c.kind, c.subject],
        set_={
            "failures": case((quiet, 1), else_=c.failures + 1),
            "last_failure_at": now,
            "locked_until": case((quiet, None), else_=c.locked_until),
        },
        where=or_(c.locked_until.is_(None), c.locked_until <= now),
    ).returning(c.failures)


_ONE_ROW = and_(
    THROTTLE.c.kind == bindparam("row_kind"), THROTTLE.c.subject == bindparam("row_subject")
)
_LOCKED_UNTIL = select(THROTTLE.c.locked_until).where(_ONE_ROW)
_LOCK = (
    update(THROTTLE)
    .where(_ONE_ROW)
    .values(locked_until=bindparam("lock_until", type_=THROTTLE.c.locked_until.type))
)
