"""Reading the audit log: Innstillinger → Logg, its CSV export, /api/v1/audit, retention.

Pages are keyset-paged on (at, id), never by OFFSET: each query is one range scan of one of
the indexes on audit_event (office, at, id), (office, actor_user_id, at, id) or (office,
kind, at, id), so the first page and page 20,000 cost the same at a million rows.

A position in the log is (at, id) of an event; `Position.token()` is its opaque form in
URLs and API cursors. `page` goes older (`before`) or newer (`after`) from a position.

Details are rendered for people by `describe`: a value {"before": x, "after": y} (or a pair
of top-level `before`/`after`) reads "AKTIV: av → på"; counts and filters by their Norwegian
names; keys it does not know, plainly ("key: value").
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, text
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Client, Integration, Office
from models.audit import AuditEvent
from models.base import utcnow
from models.office import Role, SigninSettings, User
from services import audit
from services.audit import Actor
from services.clients import STATUS_LABELS, Sort
from services.db import SessionFactory

OSLO = ZoneInfo("Europe/Oslo")
PAGE_SIZE = 50
EXPORT_BATCH = 1000
DELETE_BATCH = 5000
DEFAULT_RETENTION_YEARS = 5
MIN_RETENTION_YEARS = 1
MAX_RETENTION_YEARS = 100
TOKENS = "api"  # the person filter's value for "every API token"
# /api/v1/audit hands out only events older than this. An event's time is taken when it is
# recorded, not when its transaction commits: a slow transaction (a SAF-T import, a bulk
# change of thousands of clients) can commit an event older than one a poller has already
# read past. Generous, as a log shipper does not need the last half minute.
SETTLE = timedelta(seconds=30)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CSV_COLUMNS = ("Tid", "Hvem", "Hva", "Gjelder", "Endring", "Adresse", "Hendelse")

# Detail keys by the names the app shows them under; unknown keys are shown as they are.
LABELS: dict[str, str] = {
    "active": "AKTIV",
    "send_data": "SEND DATA",
    "count": "Antall",
    "filter": "Filter",
    "role": "Rolle",
    "name": "Navn",
    "email": "E-post",
    "description": "Beskrivelse",
    "key": "Nøkkel",
    "url": "Adresse",
    "enabled": "Slått på",
    "address": "Adresse",
    "reads_audit": "Kan lese revisjonsloggen",
    "years": "År",
    "retention_years": "Behold loggen (år)",
    "reason": "Årsak",
    "file": "Fil",
    "system": "System",
    "clients": "Klienter",
    "added": "Lagt til",
    "removed": "Fjernet",
    "status": "Status",
    "query": "Søk",
    "q": "Søk",
    "trigger": "Utløst av",
    "method": "Metode",
    "action": "Handling",
    "shown": "Viste",
    "months": "Måneder",
    "provider": "Leverandør",
    "via": "Via",
    "renewed": "Fornyet",
    "password": "Passord",
    "secret": "Hemmelighet",
    "recovery_codes": "Gjenopprettingskoder",
    "second_factor": "Tofaktor",
    "account": "Konto",
    "regained": "Fått tilgang igjen",
    "lost": "Mistet tilgang",
    "replaced": "Erstattet",
    "code": "Feilkode",
    "sort": "Sortering",
    "bulk": "Masseendring",
    "integration": "Integrasjon",
    "client_id": "Klient-ID",
    "integration_id": "Integrasjons-ID",
    "url_path": "Adressens sti og parametre",
    "message_id": "Meldings-ID",
    "event_type": "Hendelsestype",
    "text": "Tekst",
    "value": "Verdi",
}
# Details kept for programs (the API, by id) that a person reading the page does not need.
HIDDEN = frozenset({"client_id", "integration_id"})
# Values the app records as codes, by the key they are under, in the words the page uses.
VALUES: dict[str, dict[str, str]] = {
    "status": {
        # a SAF-T import
        "imported": "importert",
        "refused": "avvist",
        "unchanged": "uendret",
        "failed": "feilet",
        # a webhook delivery
        "pending": "venter",
        "delivered": "levert",
        # the client table's status filter
        **{str(key): name for key, name in STATUS_LABELS.items()},
    },
    "sort": {
        Sort.NAME: "navn (A–Å)",
        Sort.NAME_DESC: "navn (Å–A)",
        Sort.ORG_NUMBER: "org.nr. (stigende)",
        Sort.ORG_NUMBER_DESC: "org.nr. (synkende)",
        Sort.STATUS: "status (det som må følges opp først)",
        Sort.STATUS_DESC: "status (det som må følges opp sist)",
        Sort.UPDATED: "sist oppdatert (eldste først)",
        Sort.UPDATED_DESC: "sist oppdatert (nyeste først)",
    },
    "method": {"oidc": "identitetsleverandør"},
    "second_factor": {"app": "kode fra app", "nei": "nei"},
}
YES_NO = frozenset({"bulk", "reads_audit"})  # switches that read "ja"/"nei", not "på"/"av"
PAIRS = (("before", "after"), ("from", "to"), ("old", "new"))
# What a top-level before → after is the value of, by kind: a switch's name in the table.
SUBJECTS: dict[str, str] = {
    "client.active": "AKTIV",
    "client.send_data": "SEND DATA",
    "client.delete_accounts": "SLETT KONTOER",
    "client.sync": "FULL SYNKRONISERING",
    "user.role": "Rolle",
    "audit.retention": "Behold loggen (år)",
}


class LogInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# -- positions (cursors) -------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """An event's place in the log: newest first is (at, id) descending."""

    at: datetime
    id: int

    @classmethod
    def of(cls, event: AuditEvent) -> Position:
        assert event.id is not None
        return cls(as_utc(event.at), event.id)

    @property
    def micros(self) -> int:
        return (self.at - EPOCH) // timedelta(microseconds=1)

    @classmethod
    def from_micros(cls, micros: int, event_id: int) -> Position:
        return cls(EPOCH + timedelta(microseconds=micros), event_id)

    def token(self) -> str:
        raw = f"{self.micros}.{self.id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def parse(cls, token: str) -> Position:
        """A token this module handed out; ValueError for anything else."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            micros, event_id = (int(part) for part in raw.split("."))
            if not 0 <= event_id < 2**63 or not 0 <= micros < 253402300800 * 10**6:
                raise ValueError
            return cls.from_micros(micros, event_id)
        except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError):
            raise ValueError("not a position in the log") from None


def as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- filters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFilter:
    """What the log is narrowed to; None is "all". `since` inclusive, `until` exclusive."""

    user_id: int | None = None
    tokens: bool = False  # only events made through API tokens
    kind: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    client_id: int | None = None  # one client's events


def oslo_day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=OSLO).astimezone(UTC)


def bare_date(value: str) -> date | None:
    """`value` as a date alone (2026-11-29), or None when it is something else."""
    if "T" in value or " " in value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def parse_form_filter(
    person: str, kind: str, from_day: str, to_day: str, client: str = ""
) -> LogFilter:
    """The page's filter form (dates as YYYY-MM-DD, Oslo days, both included; `client`: a
    client's id, from the client page's link)."""
    person, kind, client = person.strip(), kind.strip(), client.strip()
    if client and (not client.isdigit() or int(client) >= 2**31):
        raise LogInputError("klient", "Lenken til klientens logg er ugyldig.")
    user_id = None
    if person and person != TOKENS:
        if not person.isdigit() or int(person) >= 2**31:
            raise LogInputError("hvem", "Velg en person fra listen.")
        user_id = int(person)
    if kind and kind not in audit.KINDS:
        raise LogInputError("hva", "Velg en hendelse fra listen.")
    since = _form_day("fra", from_day)
    until = _form_day("til", to_day)
    if since and until and until < since:
        raise LogInputError("til", "Til-datoen kan ikke være før fra-datoen.")
    return LogFilter(
        user_id=user_id,
        tokens=person == TOKENS,
        kind=kind or None,
        since=oslo_day_start(since) if since else None,
        until=oslo_day_start(until + timedelta(days=1)) if until else None,
        client_id=int(client) if client else None,
    )


def _form_day(field: str, value: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise LogInputError(field, "Skriv datoen som åååå-mm-dd.") from None
    if not 2000 <= day.year <= 9998:
        raise LogInputError(field, "Velg en dato mellom år 2000 og 9998.")
    return day


def _conditions(office_id: int, wanted: LogFilter) -> list[Any]:
    conditions: list[Any] = [col(AuditEvent.office_id) == office_id]
    if wanted.user_id is not None:
        conditions.append(col(AuditEvent.actor_user_id) == wanted.user_id)
    elif wanted.tokens:
        # Token events have no user: the (office, actor_user_id, at, id) index's NULL range.
        conditions += [
            col(AuditEvent.actor_user_id).is_(None),
            col(AuditEvent.actor_token_id).is_not(None),
        ]
    if wanted.kind is not None:
        conditions.append(col(AuditEvent.kind) == wanted.kind)
    if wanted.client_id is not None:
        conditions.append(col(AuditEvent.client_id) == wanted.client_id)
    if wanted.since is not None:
        conditions.append(col(AuditEvent.at) >= wanted.since)
    if wanted.until is not None:
        conditions.append(col(AuditEvent.at) < wanted.until)
    return conditions


def _older_than(position: Position) -> Any:
    # `at <= x` first: both databases take it as the index range; the OR only trims its end.
    at, event_id = col(AuditEvent.at), col(AuditEvent.id)
    return and_(at <= position.at, or_(at < position.at, event_id < position.id))


def _newer_than(position: Position) -> Any:
    at, event_id = col(AuditEvent.at), col(AuditEvent.id)
    return and_(at >= position.at, or_(at > position.at, event_id > position.id))


def query(
    office_id: int,
    wanted: LogFilter,
    *,
    before: Position | None = None,
    after: Position | None = None,
    limit: int = PAGE_SIZE,
) -> Any:
    """The SELECT of one page: newest first, or (with `after`) oldest first from it."""
    conditions = _conditions(office_id, wanted)
    if before is not None:
        conditions.append(_older_than(before))
    if after is not None:
        conditions.append(_newer_than(after))
        order = (col(AuditEvent.at).asc(), col(AuditEvent.id).asc())
    else:
        order = (col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
    return select(AuditEvent).where(*conditions).order_by(*order).limit(limit)


# -- the page ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogPage:
    events: list[AuditEvent]  # newest first
    older: Position | None  # "Eldre": more events before the last one
    newer: Position | None  # "Nyere": more events after the first one


async def page(
    db: AsyncSession,
    office_id: int,
    wanted: LogFilter,
    *,
    before: Position | None = None,
    after: Position | None = None,
    limit: int = PAGE_SIZE,
) -> LogPage:
    """One page of the log, newest first: the newest events, those just older than `before`
    ("Eldre"), or those just newer than `after` ("Nyere")."""
    rows = list(
        (await db.exec(query(office_id, wanted, before=before, after=after, limit=limit + 1))).all()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if after is not None:
        rows.reverse()
        newer = Position.of(rows[0]) if more and rows else None
        older = Position.of(rows[-1]) if rows else None
        return LogPage(rows, older=older, newer=newer)
    older = Position.of(rows[-1]) if more else None
    newer = Position.of(rows[0]) if before is not None and rows else None
    return LogPage(rows, older=older, newer=newer)


async def events_from(
    db: AsyncSession,
    office_id: int,
    wanted: LogFilter,
    after: Position | None,
    limit: int,
    *,
    now: datetime | None = None,
) -> list[AuditEvent]:
    """Oldest first from `after` (exclusive): the API's order, for shipping the log on.
    Only events older than SETTLE: one committed late is still ahead of the cursor."""
    conditions = _conditions(office_id, wanted)
    conditions.append(col(AuditEvent.at) <= (now or utcnow()) - SETTLE)
    if after is not None:
        conditions.append(_newer_than(after))
    statement = (
        select(AuditEvent)
        .where(*conditions)
        .order_by(col(AuditEvent.at).asc(), col(AuditEvent.id).asc())
        .limit(limit)
    )
    return list((await db.exec(statement)).all())


@dataclass(frozen=True)
class Person:
    value: str  # the filter's value
    label: str


async def client_name(db: AsyncSession, office_id: int, client_id: int) -> str:
    """How the page names the client a filtered log is about: the client as it is now, or,
    once it is deleted, as its newest event named it; empty when the office has neither."""
    current = (
        await db.exec(
            select(Client.name)
            .join(Integration, col(Integration.id) == col(Client.integration_id))
            .where(col(Client.id) == client_id, col(Integration.office_id) == office_id)
        )
    ).first()
    if current is not None:
        return current
    label = (
        await db.exec(
            select(AuditEvent.target_label)
            .where(col(AuditEvent.office_id) == office_id, col(AuditEvent.client_id) == client_id)
            .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
            .limit(1)
        )
    ).first()
    return (label or "").removeprefix("Klient: ")


async def people(db: AsyncSession, office_id: int) -> list[Person]:
    """The person filter's choices: the office's users, then every API token together."""
    users = (
        await db.exec(
            select(User)
            .where(col(User.office_id) == office_id)
            .order_by(func.lower(col(User.name)), col(User.email))
        )
    ).all()
    choices = [
        Person(str(u.id), f"{u.name} ({u.email})" if u.name else u.email)
        for u in users
        if u.id is not None
    ]
    return [*choices, Person(TOKENS, "API-nøkler")]


def kind_name(kind: str) -> str:
    return audit.KINDS.get(kind, kind)


# -- details, in Norwegian -----------------------------------------------------------------


def label(key: str) -> str:
    return LABELS.get(key, key)


def value_text(value: Any, key: str = "") -> str:
    if isinstance(value, bool):
        if key in YES_NO:
            return "ja" if value else "nei"
        return "på" if value else "av"
    if value is None or value == "":
        return "–"
    if key == "role" and isinstance(value, str) and value in {r.value for r in Role}:
        return Role(value).norwegian
    if isinstance(value, str) and value in VALUES.get(key, {}):
        return VALUES[key][value]
    if isinstance(value, dict):
        return ", ".join(f"{label(k)}: {value_text(v, k)}" for k, v in value.items()) or "–"
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v, key) for v in value) or "–"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}".replace(",", "\u00a0")
    return str(value)


def _change(value: Any) -> tuple[Any, Any] | None:
    if isinstance(value, dict) and len(value) == 2:
        for first, second in PAIRS:
            if first in value and second in value:
                return value[first], value[second]
    return None


def describe(details: str | dict[str, Any], kind: str = "") -> list[str]:
    """An event's details as lines a person reads: 'AKTIV: av → på', 'Antall: 12'. A
    top-level before/after is named after what the kind changes (SUBJECTS)."""
    if isinstance(details, str):
        if not details:
            return []
        try:
            parsed = json.loads(details)
        except ValueError:
            return [details]
        if not isinstance(parsed, dict):
            return [value_text(parsed)]
        details = parsed
    lines: list[str] = []
    rest = dict(details)
    for first, second in PAIRS:
        if first in rest and second in rest:
            lines += _before_after(rest.pop(first), rest.pop(second), SUBJECTS.get(kind, ""))
    for key, value in rest.items():
        if key in HIDDEN:
            continue
        change = _change(value)
        if change is not None:
            lines.append(
                f"{label(key)}: {value_text(change[0], key)} → {value_text(change[1], key)}"
            )
        else:
            lines.append(f"{label(key)}: {value_text(value, key)}")
    return lines


def _before_after(before: Any, after: Any, subject: str) -> list[str]:
    """before={"active": False}, after={"active": True} → one line per key that is named;
    plain values → one line, under `subject` when the kind names one."""
    if isinstance(before, dict) and isinstance(after, dict):
        keys = list(dict.fromkeys([*before, *after]))
        return [
            f"{label(k)}: {value_text(before.get(k), k)} → {value_text(after.get(k), k)}"
            for k in keys
        ]
    key = "role" if subject == "Rolle" else ""
    change = f"{value_text(before, key)} → {value_text(after, key)}"
    return [f"{subject}: {change}" if subject else change]


def details_of(event: AuditEvent) -> dict[str, Any]:
    """The stored details as JSON data (the API hands them on as they are)."""
    if not event.details:
        return {}
    try:
        parsed = json.loads(event.details)
    except ValueError:
        return {"text": event.details}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def local_time(moment: datetime) -> str:
    """'29.11.2026 14:05:09' in Oslo: the page and the CSV show seconds."""
    return as_utc(moment).astimezone(OSLO).strftime("%d.%m.%Y %H:%M:%S")


# -- CSV -----------------------------------------------------------------------------------


def _csv_text(value: str) -> str:
    """Text a spreadsheet would take for a formula is kept as text by a leading apostrophe."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_rows(events: Iterable[AuditEvent]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    for event in events:
        writer.writerow(
            [
                local_time(event.at),
                _csv_text(event.actor_label),
                kind_name(event.kind),
                _csv_text(event.target_label),
                _csv_text("; ".join(describe(event.details, event.kind))),
                _csv_text(event.address),
                event.kind,
            ]
        )
    return out.getvalue().encode("utf-8")


def csv_file_name(wanted: LogFilter, today: date) -> str:
    return f"revisjonslogg-{today.isoformat()}.csv"


async def csv_chunks(
    factory: SessionFactory, office_id: int, wanted: LogFilter, batch: int = EXPORT_BATCH
) -> AsyncIterator[bytes]:
    """The filtered log as a CSV Norwegian Excel opens by double-click (UTF-8 with BOM,
    semicolons, CRLF), newest first, read `batch` events at a time: memory stays flat."""
    out = io.StringIO()
    csv.writer(out, delimiter=";", lineterminator="\r\n").writerow(CSV_COLUMNS)
    yield out.getvalue().encode("utf-8-sig")
    before: Position | None = None
    while True:
        async with factory() as db:
            rows = list((await db.exec(query(office_id, wanted, before=before, limit=batch))).all())
        if rows:
            yield csv_rows(rows)
        if len(rows) < batch:
            return
        before = Position.of(rows[-1])


# -- retention -----------------------------------------------------------------------------


async def retention_years(db: AsyncSession, office_id: int) -> int:
    found = (
        await db.exec(
            select(SigninSettings.audit_retention_years).where(
                col(SigninSettings.office_id) == office_id
            )
        )
    ).first()
    return DEFAULT_RETENTION_YEARS if found is None else found


def parse_years(raw: str) -> int:
    text = raw.strip()
    if not text.isdigit():
        raise LogInputError("years", "Skriv et helt antall år, minst 1.")
    years = int(text)
    if years < MIN_RETENTION_YEARS:
        raise LogInputError("years", "Loggen må beholdes i minst 1 år.")
    if years > MAX_RETENTION_YEARS:
        raise LogInputError("years", f"Høyst {MAX_RETENTION_YEARS} år.")
    return years


async def set_retention(db: AsyncSession, actor: Actor, years: int) -> bool:
    """Behold loggen i N år; recorded with before → after in the same transaction. False
    when nothing changed (and nothing is written)."""
    settings = (
        await db.exec(
            select(SigninSettings).where(col(SigninSettings.office_id) == actor.office_id)
        )
    ).first()
    before = settings.audit_retention_years if settings else DEFAULT_RETENTION_YEARS
    if before == years:
        return False
    if settings is None:
        settings = SigninSettings(office_id=actor.office_id)
    settings.audit_retention_years = years
    settings.updated_at = utcnow()
    db.add(settings)
    audit.record(
        db,
        actor,
        "audit.retention",
        "Revisjonslogg",
        retention_years={"before": before, "after": years},
    )
    await db.commit()
    return True


def cutoff(now: datetime, years: int) -> datetime:
    """The moment `years` years before `now` (29 February → 28 February)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


async def delete_expired(
    factory: SessionFactory, *, now: datetime | None = None, batch: int = DELETE_BATCH
) -> int:
    """Deletes every office's events older than its retention, `batch` rows a transaction
    (short locks, however much is due), then refreshes the table's statistics; returns how
    many were deleted."""
    now = now or utcnow()
    async with factory() as db:
        offices: Sequence[tuple[int | None, int | None]] = (
            await db.exec(
                select(Office.id, SigninSettings.audit_retention_years).outerjoin(
                    SigninSettings, col(SigninSettings.office_id) == col(Office.id)
                )
            )
        ).all()
    deleted = 0
    for office_id, years in offices:
        if office_id is None:
            continue
        limit = cutoff(now, max(MIN_RETENTION_YEARS, years or DEFAULT_RETENTION_YEARS))
        while True:
            async with factory() as db:
                ids = (
                    await db.exec(
                        select(AuditEvent.id)
                        .where(col(AuditEvent.office_id) == office_id, col(AuditEvent.at) < limit)
                        .order_by(col(AuditEvent.at))
                        .limit(batch)
                    )
                ).all()
                if ids:
                    await db.exec(delete(AuditEvent).where(col(AuditEvent.id).in_(ids)))
                    await db.commit()
            deleted += len(ids)
            if len(ids) < batch:
                break
    await refresh_statistics(factory)
    return deleted


async def refresh_statistics(factory: SessionFactory) -> None:
    """SQLite picks the narrower index for person + kind only with statistics (without them
    it scans the person's whole range for a kind they rarely had: 60-90 ms at a million
    rows); ANALYZE of the one table takes about half a second there. PostgreSQL's
    autovacuum keeps its own."""
    async with factory() as db:
        if db.get_bind().dialect.name == "sqlite":
            await (await db.connection()).execute(text("ANALYZE audit_event"))
            await db.commit()
