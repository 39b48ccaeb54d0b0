"""The client table of an integration: listing, searching, sorting and the four switches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, func, not_, or_
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration
from models.base import utcnow
from services import audit, publishing
from services.audit import Actor
from services.sync.status import SHOW_AFTER_FAILURES, SyncStatus

PAGE_SIZE = 50
MAX_QUERY_LENGTH = 100
_NORWEGIAN_TAIL = str.maketrans({"æ": "{", "ø": "|", "å": "}", "ä": "{", "ö": "|"})


class Switch(StrEnum):
    """The per-client columns; values are the column names on Client."""

    SEND_DATA = "send_data"
    FULL_SYNC = "full_sync"
    DELETE_ACCOUNTS = "delete_accounts"
    ACTIVE = "active"


class StatusFilter(StrEnum):
    """The client table's status filter; values are what the URL carries."""

    OK = "ok"
    ERROR = "feil"
    KEY_ERROR = "nokkelfeil"
    STALE = "ikke-oppdatert"
    INACTIVE = "inaktiv"
    NEW = "ny"


STATUS_LABELS = {
    StatusFilter.OK: "OK",
    StatusFilter.ERROR: "Feil",
    StatusFilter.KEY_ERROR: "Nøkkelfeil",
    StatusFilter.STALE: "Ikke oppdatert siste 24 timer",
    StatusFilter.INACTIVE: "Inaktiv",
    StatusFilter.NEW: "Ny",
}
# An active client not synced for this long is stale (the filter, and the row says so).
STALE_AFTER = timedelta(hours=24)


def status_condition(status: StatusFilter, now: datetime | None = None) -> ColumnElement[bool]:
    active = col(Client.active)
    stale_before = (now or utcnow()) - STALE_AFTER
    failing = and_(
        col(Client.sync_status) == SyncStatus.ERROR,
        col(Client.sync_failures) >= SHOW_AFTER_FAILURES,
    )
    return {
        StatusFilter.OK: and_(
            active, col(Client.sync_status) == SyncStatus.OK, col(Client.access_lost).is_(False)
        ),
        StatusFilter.ERROR: and_(
            active,
            or_(failing, col(Client.sync_status) == SyncStatus.NO_ACCESS, col(Client.access_lost)),
        ),
        StatusFilter.KEY_ERROR: and_(active, col(Client.sync_status) == SyncStatus.KEY_ERROR),
        # Never synced counts once it has waited a day (not minutes after Aktiver alle).
        StatusFilter.STALE: and_(
            active,
            or_(
                and_(col(Client.synced_at).is_(None), col(Client.updated_at) < stale_before),
                col(Client.synced_at) < stale_before,
            ),
        ),
        StatusFilter.INACTIVE: not_(active),
        StatusFilter.NEW: col(Client.is_new),
    }[status]


class Sort(StrEnum):
    NAME = "navn"
    NAME_DESC = "-navn"
    ORG_NUMBER = "orgnr"
    ORG_NUMBER_DESC = "-orgnr"
    STATUS = "status"  # what needs attention first
    STATUS_DESC = "-status"
    UPDATED = "oppdatert"  # the longest since updated first
    UPDATED_DESC = "-oppdatert"


def attention_rank() -> ColumnElement[int]:
    """A client's place when sorted by status: what the accountant must act on first, then
    what waits, then what is fine, then the inactive."""
    failing = and_(
        col(Client.sync_status) == SyncStatus.ERROR,
        col(Client.sync_failures) >= SHOW_AFTER_FAILURES,
    )
    return case(
        (not_(col(Client.active)), 3),
        (
            or_(
                col(Client.access_lost),
                col(Client.sync_status).in_((SyncStatus.NO_ACCESS, SyncStatus.KEY_ERROR)),
                failing,
            ),
            0,
        ),
        (col(Client.sync_status) == SyncStatus.OK, 2),
        else_=1,
    )


@dataclass(frozen=True)
class ClientQuery:
    text: str = ""
    sort: Sort = Sort.NAME
    offset: int = 0
    status: StatusFilter | None = None

    @classmethod
    def parse(
        cls,
        text: str | None,
        sort: str | None,
        offset: int | None = 0,
        status: str | None = None,
    ) -> ClientQuery:
        try:
            parsed_sort = Sort(sort or Sort.NAME)
        except ValueError:
            parsed_sort = Sort.NAME
        return cls(
            text=(text or "").strip()[:MAX_QUERY_LENGTH],
            sort=parsed_sort,
            offset=max(offset or 0, 0),
            status=StatusFilter(status) if status in set(StatusFilter) else None,
        )

    def params(self, **changes: object) -> dict[str, object]:
        """The query as URL parameters (for links that keep it), with some changed."""
        params = {"q": self.text, "sort": self.sort.value, "status": self.status or ""}
        return {k: v for k, v in {**params, **changes}.items() if v not in ("", None)}


@dataclass(frozen=True)
class ClientPage:
    clients: list[Client]
    query: ClientQuery
    matching: int
    next_offset: int | None


@dataclass(frozen=True)
class Counts:
    active: int = 0  # switched on and reachable: what is kept up to date
    inactive: int = 0
    attention: int = 0  # active clients with an error the accountant must act on
    new: int = 0
    no_access: int = 0  # switched on, but the system gives no access: not counted as active

    @property
    def total(self) -> int:
        return self.active + self.inactive + self.no_access


def sort_key(name: str) -> str:
    """Norwegian alphabetical order: case-insensitive, leading quotes ignored, æ ø å after z."""
    folded = name.casefold().lstrip("\"'«»“”‘’ -.,&<>()").translate(_NORWEGIAN_TAIL)
    return folded or name.casefold()


def search_text(name: str, org_number: str) -> str:
    return f"{name.casefold()} {org_number}"


def describe(client: Client, name: str, org_number: str) -> None:
    client.name = name
    client.org_number = org_number
    client.sort_key = sort_key(name)
    client.search_text = search_text(name, org_number)


def shown(integration_id: int, query: ClientQuery) -> list[ColumnElement[bool]]:
    """The clients a query shows (search and status filter): also what bulk actions act on."""
    where = [col(Client.integration_id) == integration_id]
    if query.text:
        where.append(_matches(query.text))
    if query.status is not None:
        where.append(status_condition(query.status))
    return where


def _order(sort: Sort) -> tuple[ColumnElement[Any], ...]:
    # Never synced counts as the oldest; ties keep the name order.
    oldest_first = case((col(Client.synced_at).is_(None), 0), else_=1)
    return {
        Sort.NAME: (col(Client.sort_key), col(Client.id)),
        Sort.NAME_DESC: (col(Client.sort_key).desc(), col(Client.id).desc()),
        Sort.ORG_NUMBER: (col(Client.org_number), col(Client.id)),
        Sort.ORG_NUMBER_DESC: (col(Client.org_number).desc(), col(Client.id).desc()),
        Sort.STATUS: (attention_rank(), col(Client.sort_key), col(Client.id)),
        Sort.STATUS_DESC: (attention_rank().desc(), col(Client.sort_key), col(Client.id)),
        Sort.UPDATED: (oldest_first, col(Client.synced_at), col(Client.sort_key), col(Client.id)),
        Sort.UPDATED_DESC: (
            oldest_first.desc(),
            col(Client.synced_at).desc(),
            col(Client.sort_key),
            col(Client.id),
        ),
    }[sort]


async def list_clients(db: AsyncSession, integration_id: int, query: ClientQuery) -> ClientPage:
    where = shown(integration_id, query)
    matching = (await db.exec(select(func.count()).select_from(Client).where(*where))).one()
    order = _order(query.sort)
    rows = (
        await db.exec(
            select(Client).where(*where).order_by(*order).offset(query.offset).limit(PAGE_SIZE)
        )
    ).all()
    end = query.offset + len(rows)
    return ClientPage(
        clients=list(rows),
        query=query,
        matching=matching,
        next_offset=end if end < matching else None,
    )


def _matches(text: str) -> ColumnElement[bool]:
    folded = text.casefold()
    digits = folded.replace(" ", "")
    pattern = "%" + _escape_like(folded) + "%"
    clauses = [col(Client.search_text).like(pattern, escape="\\")]
    if digits.isdigit():
        # "934 228 391" finds 934228391: org numbers are often written in groups.
        clauses.append(col(Client.org_number).like(f"%{digits}%"))
    return or_(*clauses)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def counts(db: AsyncSession, integration_id: int) -> Counts:
    return (await counts_by_integration(db, [integration_id])).get(integration_id, Counts())


async def counts_by_integration(db: AsyncSession, integration_ids: list[int]) -> dict[int, Counts]:
    def tally(condition: ColumnElement[bool]):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    attention = or_(status_condition(StatusFilter.ERROR), status_condition(StatusFilter.KEY_ERROR))
    unreachable = and_(col(Client.active), without_access())
    rows = (
        await db.exec(
            select(
                Client.integration_id,
                tally(and_(col(Client.active), not_(without_access()))),
                tally(not_(col(Client.active))),
                tally(attention),
                tally(col(Client.is_new)),
                tally(unreachable),
            )
            .where(col(Client.integration_id).in_(integration_ids))
            .group_by(col(Client.integration_id))
        )
    ).all()
    return {
        integration_id: Counts(
            active=int(active),
            inactive=int(inactive),
            attention=int(attn),
            new=int(new),
            no_access=int(no_access),
        )
        for integration_id, active, inactive, attn, new, no_access in rows
    }


def without_access() -> ColumnElement[bool]:
    """The system does not let us read the client (not granted, withdrawn, or its key
    refused): switched on, it is still not kept up to date."""
    return or_(
        col(Client.access_lost),
        col(Client.sync_status).in_((SyncStatus.NO_ACCESS, SyncStatus.KEY_ERROR)),
    )


# Built once: it runs twice for every sync.
WITH_INTEGRATION = (
    select(Client, Integration)
    .join(Integration, col(Integration.id) == col(Client.integration_id))
    .where(col(Client.id) == bindparam("client_id"))
)


async def with_integration(db: AsyncSession, client_id: int) -> tuple[Client, Integration] | None:
    """The client and its integration, in one query (the sync's hot path reads both)."""
    row = (await db.exec(WITH_INTEGRATION, params={"client_id": client_id})).first()  # type: ignore[call-overload]
    return (row[0], row[1]) if row is not None else None


async def get_client(db: AsyncSession, integration_id: int, client_id: int) -> Client | None:
    client = await db.get(Client, client_id)
    if client is None or client.integration_id != integration_id:
        return None
    return client


def audit_target(client: Client) -> str:
    """How the audit log names a client."""
    return _client_label(client.name, client.org_number)


def _client_label(name: str, org_number: str) -> str:
    number = f" ({org_number})" if org_number else ""
    return f"Klient: {name}{number}"


def audit_about(client_id: int | None, integration_id: int, integration: str) -> dict[str, Any]:
    """The details every client event carries: which integration holds it (two may hold the
    same company), by name for people and by id for programs."""
    about: dict[str, Any] = {"integration": integration} if integration else {}
    return {**about, "client_id": client_id, "integration_id": integration_id}


# The audit kind of each switch; FULL SYNKRONISERING orders a sync.
SWITCH_KINDS = {
    Switch.ACTIVE: "client.active",
    Switch.SEND_DATA: "client.send_data",
    Switch.DELETE_ACCOUNTS: "client.delete_accounts",
    Switch.FULL_SYNC: "client.sync",
}
FULL_SYNC_ACTION = "Full synkronisering"
CHECK_ACCESS_ACTION = "Sjekk tilgang på nytt"


async def check_access_now(
    db: AsyncSession, client: Client, actor: Actor, *, integration: str
) -> None:
    """Sjekk tilgang på nytt: the client is synced at the next tick, and it is recorded
    (`integration`: its display name, for the log)."""
    about = audit_about(client.id, client.integration_id, integration)
    audit.record(
        db, actor, "client.sync", audit_target(client), action=CHECK_ACCESS_ACTION, **about
    )
    await poll_now(db, client)


async def poll_now(db: AsyncSession, client: Client) -> None:
    """Due at the scheduler's next tick (demo mode: as if the poll interval had passed)."""
    client.sync_due_at = utcnow()
    db.add(client)
    await db.commit()


async def set_switch(
    db: AsyncSession,
    client: Client,
    switch: Switch,
    on: bool,
    actor: Actor,
    *,
    integration: str,
) -> Client:
    """Set one switch to an explicit value, so a repeated click cannot flip it back. A
    change is recorded in the audit log (`integration`: its display name); a click that
    changes nothing is not."""
    before = getattr(client, switch.value)
    if before != on and client.id is not None:
        await publishing.record_switch(db, [client.id], switch.value, on)
    if before != on:
        action = {"action": FULL_SYNC_ACTION} if switch is Switch.FULL_SYNC else {}
        about = audit_about(client.id, client.integration_id, integration)
        target = audit_target(client)
        audit.record(
            db, actor, SWITCH_KINDS[switch], target, **action, before=before, after=on, **about
        )
    setattr(client, switch.value, on)
    client.is_new = False
    client.updated_at = utcnow()
    if on and switch in (Switch.ACTIVE, Switch.FULL_SYNC):
        client.sync_due_at = client.updated_at  # the scheduler picks it up at its next tick
    await db.commit()
    await db.refresh(client)
    return client


async def set_all_active(
    db: AsyncSession,
    integration_id: int,
    on: bool,
    query: ClientQuery,
    actor: Actor,
    *,
    target: str,
    integration: str = "",
) -> int:
    """Aktiver alle / Deaktiver alle, of the clients the table shows (its search and status
    filter). Clients the key no longer reaches are not activated. Recorded in the audit log
    (on `target`, the integration as the log names it; `integration`, its display name)
    with the count changed, the count shown and the query used, when it changed any; and
    each client changed as its own `client.active` marked as a bulk change, so "who turned
    off this client" finds it too."""
    shown_where = shown(integration_id, query)
    where = [*shown_where, col(Client.active) != on]
    if on:
        where.append(col(Client.access_lost).is_(False))
    now = utcnow()
    values: dict[str, object] = {"active": on, "is_new": False, "updated_at": now}
    if on:
        values["sync_due_at"] = now
    rows = (await db.exec(select(Client.id, Client.name, Client.org_number).where(*where))).all()
    if not rows:
        return 0
    changed = [client_id for client_id, _, _ in rows if client_id is not None]
    # What the table showed when the button was pressed (a filter may not show them after).
    count_shown = (
        await db.exec(select(func.count()).select_from(Client).where(*shown_where))
    ).one()
    result = await db.exec(update(Client).where(col(Client.id).in_(changed)).values(**values))
    await publishing.record_switch(db, changed, Switch.ACTIVE.value, on)
    audit.record(
        db,
        actor,
        "client.bulk",
        target,
        at=now,
        action="Aktiver alle viste" if on else "Deaktiver alle viste",
        count=result.rowcount,
        shown=count_shown,
        filter=query.params(),
    )
    per_client = [
        audit.build(
            actor,
            SWITCH_KINDS[Switch.ACTIVE],
            _client_label(name, org_number),
            at=now,
            before=not on,
            after=on,
            bulk=True,
            **audit_about(client_id, integration_id, integration),
        )
        for client_id, name, org_number in rows
    ]
    await audit.record_many(db, per_client)
    await db.commit()
    return result.rowcount


@dataclass(frozen=True)
class AttentionRow:
    client: Client
    integration: Integration
    stale: bool  # not updated within STALE_AFTER (beside or instead of an error)


def _attention_where(office_id: int, now: datetime) -> list[ColumnElement[bool]]:
    """The office's active clients with an error, without access, or not updated within a
    day, of integrations that fetch data (files arrive when the office sends them)."""
    problem = or_(
        status_condition(StatusFilter.ERROR, now),
        status_condition(StatusFilter.KEY_ERROR, now),
        status_condition(StatusFilter.STALE, now),
    )
    return [col(Integration.office_id) == office_id, col(Integration.key_kind) != "none", problem]


async def attention_count(db: AsyncSession, office_id: int) -> int:
    """How many clients Oppfølging lists (the integrations list shows it)."""
    return int(
        (
            await db.exec(
                select(func.count())
                .select_from(Client)
                .join(Integration, col(Integration.id) == col(Client.integration_id))
                .where(*_attention_where(office_id, utcnow()))
            )
        ).one()
    )


async def needing_attention(
    db: AsyncSession, office_id: int, limit: int = 500
) -> tuple[list[AttentionRow], int]:
    """Oppfølging: the clients needing attention across the office's integrations, what
    must be fixed first, then the oldest; and how many there are in all."""
    now = utcnow()
    where = _attention_where(office_id, now)
    joined = select(Client, Integration).join(
        Integration, col(Integration.id) == col(Client.integration_id)
    )
    rows = (
        await db.exec(
            joined.where(*where).order_by(attention_rank(), *_order(Sort.UPDATED)).limit(limit)
        )
    ).all()
    stale_before = now - STALE_AFTER
    return [
        AttentionRow(
            client,
            integration,
            stale=(client.synced_at or client.updated_at) < stale_before,
        )
        for client, integration in rows
    ], await attention_count(db, office_id)
