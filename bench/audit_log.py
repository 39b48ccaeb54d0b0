"""The audit log at a million rows (issue 20): Innstillinger → Logg's queries, p95.

A fresh migrated database (SQLite, and PostgreSQL when one answers) is filled in bulk with
BENCH_AUDIT_ROWS events over five years: four offices, the measured one holding 85 % of
them, a dozen people and two API tokens each, every kind in KINDS (sign-ins and switches
often, settings rarely). Then, through `services.audit_log.page` (what the page calls, on a
session of its own per request as a request gets), BENCH_AUDIT_REQUESTS times each:
- the first page (newest 50),
- an "Eldre" page from a random place deep in the log,
- filtered by person, by kind, by period (a month), by API tokens, and person + kind,
varying the person, kind and month between requests. Target (issue 20): p95 ≤ 50 ms.

Environment: BENCH_AUDIT_ROWS (1000000), BENCH_AUDIT_REQUESTS (200),
BENCH_AUDIT_DATABASES (sqlite,postgresql; PostgreSQL is skipped, and said so, when none
answers at BENCH_POSTGRES_URL).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.common import emit, env_list, load_average, percentile, postgres_available, say
from bench.common import scratch_database as scratch
from models import ApiToken, Office, User
from services import audit, audit_log
from services.audit_log import LogFilter, Position
from services.db import create_engine, create_session_factory, sqlite_path

ROWS = int(os.environ.get("BENCH_AUDIT_ROWS", "1000000"))
REQUESTS = int(os.environ.get("BENCH_AUDIT_REQUESTS", "200"))
TARGET_MS = 50
OFFICES, PEOPLE, TOKENS = 4, 12, 2
MEASURED_SHARE = 0.85
YEARS = 5
COLUMNS = (
    "office_id", "at", "actor_user_id", "actor_token_id", "actor_label", "kind",
    "target_label", "details", "address",
)  # fmt: skip
# How often each kind happens, roughly: sign-ins and switches daily, settings now and then.
WEIGHTS = {
    "signin": 30, "signout": 12, "signin.failed": 3, "client.active": 20,
    "client.send_data": 12, "client.sync": 8, "client.bulk": 2, "saft.import": 4,
    "integration.refreshed": 3,
}  # fmt: skip
RARE = 0.05  # every other kind


class World:
    """Who the events are by: per office, its people's ids and e-mails and its tokens."""

    def __init__(self) -> None:
        self.offices: list[int] = []
        self.people: dict[int, list[tuple[int, str]]] = {}
        self.tokens: dict[int, list[tuple[int, str]]] = {}


async def people_and_tokens(url: str) -> World:
    world = World()
    engine = create_engine(url)
    async with create_session_factory(engine)() as db:
        for o in range(OFFICES):
            office = Office(name=f"Kontor {o + 1} AS")
            db.add(office)
            await db.flush()
            assert office.id is not None
            users = [
                User(office_id=office.id, email=f"person{p}@kontor{o + 1}.no", password_hash="")
                for p in range(PEOPLE)
            ]
            tokens = [
                ApiToken(
                    office_id=office.id,
                    name=f"Produkt {t + 1}",
                    prefix="erpapi_xxxx",
                    token_hash=f"{o}-{t}".ljust(64, "0"),
                )
                for t in range(TOKENS)
            ]
            db.add_all([*users, *tokens])
            await db.flush()
            world.offices.append(office.id)
            world.people[office.id] = [(u.id or 0, u.email) for u in users]
            world.tokens[office.id] = [(t.id or 0, f"API-nøkkel: {t.name}") for t in tokens]
        await db.commit()
    await engine.dispose()
    return world


def events(world: World, rows: int, now: datetime) -> Iterator[tuple]:
    """`rows` events in time order over YEARS years, as audit_event rows (without id)."""
    rng = random.Random(20)
    kinds = list(audit.KINDS)
    common = list(WEIGHTS)
    weights = list(WEIGHTS.values())
    rare = [k for k in kinds if k not in WEIGHTS]
    span = YEARS * 365 * 86400
    start = now - timedelta(seconds=span)
    step = span / rows
    measured = world.offices[0]
    others = world.offices[1:]
    for i in range(rows):
        at = start + timedelta(seconds=i * step + rng.random() * step)
        office = measured if rng.random() < MEASURED_SHARE else rng.choice(others)
        kind = rng.choice(rare) if rng.random() < RARE else rng.choices(common, weights)[0]
        if kind != "signin.failed" and rng.random() < 0.05:
            token_id, label = rng.choice(world.tokens[office])
            user_id = None
        else:
            user_id, label = rng.choice(world.people[office])
            token_id = None
        details = ""
        if kind in ("client.active", "client.send_data"):
            before = rng.random() < 0.5
            details = f'{{"{kind[7:]}": {{"before": {str(before).lower()}, "after": {str(not before).lower()}}}}}'  # noqa: E501
        elif kind == "client.bulk":
            details = f'{{"count": {rng.randint(2, 400)}, "filter": {{"status": "ny"}}}}'
        yield (
            office, at, user_id, token_id, label, kind,
            f"Klient: Klient {rng.randint(1, 5000)} AS", details, "10.0.0.1",
        )  # fmt: skip


def fill_sqlite(url: str, world: World, rows: int, now: datetime) -> None:
    path = sqlite_path(url)
    assert path is not None
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA synchronous=OFF")
        placeholders = ", ".join("?" for _ in COLUMNS)
        statement = f"INSERT INTO audit_event ({', '.join(COLUMNS)}) VALUES ({placeholders})"
        # SQLAlchemy's SQLite DATETIME text: sortable, UTC, no offset.
        connection.executemany(
            statement,
            (
                (r[0], r[1].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[2:])
                for r in events(world, rows, now)
            ),
        )
        connection.commit()
        connection.execute("ANALYZE audit_event")  # as the nightly job does
        connection.commit()
    finally:
        connection.close()


async def fill_postgres(url: str, world: World, rows: int, now: datetime) -> None:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await connection.copy_records_to_table(
            "audit_event", records=events(world, rows, now), columns=list(COLUMNS)
        )
        await connection.execute("ANALYZE audit_event")  # as autovacuum would, soon after
    finally:
        await connection.close()


async def timings(run: Callable[[int], Awaitable[object]], count: int) -> dict:
    for i in range(10):  # warm-up
        await run(i)
    times = []
    for i in range(count):
        started = time.perf_counter()
        await run(i)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p95_ms": round(percentile(times, 95), 2),
        "max_ms": round(max(times), 2),
    }


async def measure(url: str, world: World, now: datetime) -> dict[str, dict]:
    engine = create_engine(url)
    factory = create_session_factory(engine)
    office = world.offices[0]
    rng = random.Random(7)
    people = [u for u, _ in world.people[office]]
    kinds = list(audit.KINDS)
    span = YEARS * 365 * 86400

    async def page(wanted: LogFilter, before: Position | None = None) -> audit_log.LogPage:
        async with factory() as db:
            return await audit_log.page(db, office, wanted, before=before)

    def moment() -> datetime:
        return now - timedelta(seconds=rng.random() * span)

    def month(i: int) -> LogFilter:
        start = moment()
        return LogFilter(since=start, until=start + timedelta(days=31))

    cases: dict[str, Callable[[int], Awaitable[object]]] = {
        "first_page": lambda i: page(LogFilter()),
        "older_page": lambda i: page(LogFilter(), before=Position(moment(), 2**62)),
        "by_person": lambda i: page(LogFilter(user_id=people[i % len(people)])),
        "by_kind": lambda i: page(LogFilter(kind=kinds[i % len(kinds)])),
        "by_period": lambda i: page(month(i)),
        "by_tokens": lambda i: page(LogFilter(tokens=True)),
        "person_and_kind": lambda i: page(
            LogFilter(user_id=people[i % len(people)], kind=kinds[i % len(kinds)])
        ),
    }
    results = {}
    try:
        first = await page(LogFilter())
        assert len(first.events) == audit_log.PAGE_SIZE and first.older is not None
        for name, run in cases.items():
            results[name] = await timings(run, REQUESTS)
    finally:
        await engine.dispose()
    return results


async def bench(kind: str) -> None:
    now = datetime.now(UTC)
    async with scratch(kind, "audit") as url:
        world = await people_and_tokens(url)
        started = time.monotonic()
        if kind == "sqlite":
            await asyncio.to_thread(fill_sqlite, url, world, ROWS, now)
        else:
            await fill_postgres(url, world, ROWS, now)
        fill = time.monotonic() - started
        load = load_average()
        results = await measure(url, world, now)
    met = {name: r["p95_ms"] <= TARGET_MS for name, r in results.items()}
    emit(
        "audit_log",
        db=kind,
        rows=ROWS,
        requests=REQUESTS,
        fill_s=round(fill, 1),
        load_before=round(load, 2),
        **results,
        target_p95_ms=TARGET_MS,
        met=met,
    )
    figures = ", ".join(f"{name} p95 {r['p95_ms']} ms" for name, r in results.items())
    say(f"audit_log {kind} rows={ROWS} (filled in {fill:.0f}s): {figures}; targets met: {met}")


def main() -> None:
    for kind in env_list("BENCH_AUDIT_DATABASES", "sqlite,postgresql"):
        if kind == "postgresql" and not postgres_available():
            emit("audit_log", db=kind, skipped="no PostgreSQL")
            continue
        asyncio.run(bench(kind))


if __name__ == "__main__":
    main()
