"""Benchmarks 1 and 2: sync throughput against the ideal, and a naive sequential baseline.

The simulator (its own process, bench.sim_server) serves N clients with 80 accounts and two
years of vouchers each, and sleeps a fixed latency on every request. This process is the
app's sync: our SyncRunner claiming due clients through leases and our SyncEngine syncing
them, on a fresh migrated database (SQLite or PostgreSQL), with
SchedulerSettings(concurrency=C, per_integration=C) and no rate limit.

Per (database, N, C):
- full sync of every client: wall time, requests (per client, and by endpoint), peak RSS of
  this process, CPU seconds here and in the simulator, and
  efficiency = (requests x latency / C) / wall time, 1.0 being the limit that latency and
  concurrency allow;
- incremental tick after 1% of the clients changed (a voucher booked today in Tripletex, and
  the month noted as the webhook receiver notes it): wall time, which clients it touched;
- polls (the last C of each N): every client due by schedule; the first poll after a full
  sync, and the steady state (a second one, answered 304 where nothing changed).
Per (database, N), the baseline: the same full sync done sequentially, one request at a time
(SyncEngine.sync_client one client after another), timed on a sample and extrapolated to N.

Ticking: `eager` calls SyncRunner.tick() whenever a slot is free (what the runner would do if
it refilled slots as syncs finish); `deployed` calls it every SchedulerSettings.tick_seconds,
as the app's APScheduler job does. Environment: BENCH_SIZES, BENCH_CONCURRENCY,
BENCH_DATABASES, BENCH_PG_SIZES, BENCH_LATENCY, BENCH_MAX_IDEAL_SECONDS, BENCH_TICK,
BENCH_BASELINE_CLIENTS, BENCH_PROFILE (a pyinstrument profile of each full sync, to a file).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import aiohttp
import httpx
import uvloop
from cryptography.fernet import Fernet
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bench.common import (
    Child,
    cpu_seconds,
    emit,
    env_ints,
    env_list,
    load_average,
    postgres_available,
    reset_peak_rss,
    rss_mb,
    say,
    scratch_database,
    start_simulator,
)
from bench.world import CONSUMER_TOKEN, key_for
from models import Client, SyncRun
from models.base import utcnow
from services import clients as client_service
from services import integrations as integration_service
from services.audit import Actor
from services.auth import create_user
from services.clients import ClientQuery
from services.connectors.registry import Connectors
from services.connectors.tripletex import TripletexClient, TripletexConnector
from services.crypto import KeyVault
from services.db import SessionFactory, create_engine, create_session_factory, open_session
from services.outbound import outbound
from services.runtime import tune_gc
from services.sync import pending, periods
from services.sync.engine import SyncEngine, SyncSettings
from services.sync.scheduler import SchedulerSettings, SyncRunner
from services.sync.slots import RequestSlots


@dataclass
class Requests:
    """Every request this process sends to Tripletex, by endpoint and answer."""

    paths: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def trace(self) -> aiohttp.TraceConfig:
        """Counts what the Tripletex client's aiohttp session sends and gets back."""

        async def sent(_s: object, _c: object, params: aiohttp.TraceRequestStartParams) -> None:
            self.paths[params.url.path.rsplit("/v2", 1)[-1]] += 1

        async def answered(_s: object, _c: object, params: aiohttp.TraceRequestEndParams) -> None:
            self.statuses[params.response.status] += 1

        config = aiohttp.TraceConfig()
        config.on_request_start.append(sent)
        config.on_request_end.append(answered)
        return config

    @property
    def total(self) -> int:
        return sum(self.paths.values())

    def reset(self) -> None:
        self.paths.clear()
        self.statuses.clear()


@dataclass
class Bed:
    """One database with one integration of N active clients, and our sync wired to it."""

    kind: str
    clients: int
    database: AsyncEngine
    factory: SessionFactory
    engine: SyncEngine
    requests: Requests
    integration_id: int
    sim: Child


async def run_until_idle(runner: SyncRunner, tick: str) -> None:
    """Tick until no client is due and every sync started has finished."""
    if tick == "deployed":
        # As the app's interval job ticks (and whatever the runner starts by itself); the
        # wait ends early once nothing runs, so the measurement ends when the work does.
        while True:
            if await runner.tick() == 0 and runner.busy == 0:
                return
            for _ in range(int(runner.settings.tick_seconds * 100)):
                if not runner.busy:
                    break
                await asyncio.sleep(0.01)
    idle_at: int | None = None  # how busy we were when a tick last found nothing due
    while True:
        busy = runner.busy
        if busy < runner.settings.concurrency and busy != idle_at:
            if await runner.tick() == 0:
                if runner.busy == 0:
                    return
                idle_at = runner.busy
            else:
                idle_at = None
        await asyncio.sleep(0.002)


async def measure(bed: Bed, concurrency: int, tick: str, label: str) -> dict:
    """Run the runner until idle; what it took and what it did."""
    runner = SyncRunner(
        bed.factory,
        bed.engine,
        SchedulerSettings(concurrency=concurrency, per_integration=concurrency),
    )
    async with bed.factory() as db:
        last_run = (await db.exec(select(func.max(SyncRun.id)))).one() or 0
    bed.requests.reset()
    reset_peak_rss()
    cpu, sim_cpu = cpu_seconds(), cpu_seconds(bed.sim.pid)
    profiler = None
    if os.environ.get("BENCH_PROFILE") and label == "full":
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.002, async_mode="disabled")
        profiler.start()
    started = time.monotonic()
    await run_until_idle(runner, tick)
    wall = time.monotonic() - started
    if profiler is not None:
        profiler.stop()
        path = f"{os.environ['BENCH_PROFILE']}-{bed.kind}-{bed.clients}-c{concurrency}.txt"
        write_profile(profiler, path)
    cpu, sim_cpu = cpu_seconds() - cpu, cpu_seconds(bed.sim.pid) - sim_cpu
    async with bed.factory() as db:
        runs = (
            await db.exec(
                select(SyncRun.client_id, SyncRun.result, SyncRun.requests).where(
                    col(SyncRun.id) > last_run
                )
            )
        ).all()
    total = bed.requests.total
    latency = LATENCY
    return {
        "wall_s": round(wall, 2),
        "requests": total,
        "by_endpoint": dict(bed.requests.paths),
        "statuses": {str(k): v for k, v in bed.requests.statuses.items()},
        "clients_synced": len({r[0] for r in runs}),
        "runs_failed": sum(1 for r in runs if r[1] != "ok"),
        "synced_ids": {r[0] for r in runs},
        "efficiency": round(total * latency / concurrency / wall, 3) if wall else None,
        "ideal_s": round(total * latency / concurrency, 2),
        "rss_peak_mb": round(rss_mb()[1], 1),
        "cpu_s": round(cpu, 2),
        "sim_cpu_s": round(sim_cpu, 2),
        "cpu_ms_per_request": round(cpu * 1000 / total, 3) if total else None,
    }


async def change_one_percent(bed: Bed) -> set[int]:
    """Book a voucher today for every 100th client in Tripletex, and note the month as the
    webhook receiver does for voucher.create: returns the changed clients' ids."""
    async with bed.factory() as db:
        rows = (
            await db.exec(
                select(Client.id, Client.erp_id)
                .where(col(Client.integration_id) == bed.integration_id)
                .order_by(col(Client.id))
            )
        ).all()
    changed = rows[:: max(1, len(rows) // max(1, len(rows) // 100))][: max(1, len(rows) // 100)]
    today = date.today()
    async with httpx.AsyncClient(base_url=bed.sim.url, timeout=30) as http:
        for _, erp_id in changed:
            response = await http.post(f"/_sim/companies/{erp_id}/vouchers", json={})
            response.raise_for_status()
    async with open_session(bed.factory) as db:
        for client_id, _ in changed:
            await pending.note_months(db, client_id, [periods.Month(today.year, today.month)])
    return {client_id for client_id, _ in changed}


async def make_all_due(bed: Bed) -> None:
    async with open_session(bed.factory) as db:
        await db.exec(
            update(Client)
            .where(col(Client.integration_id) == bed.integration_id)
            .values(sync_due_at=utcnow() - timedelta(seconds=1))
        )


async def prepare(
    kind: str,
    url: str,
    clients: int,
    sim: Child,
    session: httpx.AsyncBaseTransport,
    requests: Requests,
) -> Bed:
    database = create_engine(url)
    factory = create_session_factory(database)
    vault = KeyVault((Fernet.generate_key().decode(),))
    connector = TripletexConnector(
        TripletexClient(session, base_url=f"{sim.url}/v2", consumer_token=CONSUMER_TOKEN)
    )
    async with open_session(factory) as db:
        user = await create_user(
            db, email="bench@benchmark.example", password="benchmark-passord", office_name="Bench"
        )
        actor = Actor(office_id=user.office_id, label=user.email)
    async with factory() as db:
        integration = await integration_service.create_integration(
            db,
            vault,
            connector,
            actor,
            raw_key=key_for(clients),
            raw_description="Benchmark",
        )
        assert integration.id is not None
        integration_id = integration.id
        await client_service.set_all_active(
            db, integration_id, True, ClientQuery(), actor, target="Benchmark"
        )
    # Polls are measured on their own (make_all_due): a client synced early in a long full
    # sync must not come due again while the measurement still runs.
    settings = SyncSettings(years=2, poll_interval=timedelta(days=1))
    engine = SyncEngine(factory, vault, Connectors([connector]), settings)
    return Bed(kind, clients, database, factory, engine, requests, integration_id, sim)


async def baseline(bed: Bed, sample: int) -> dict:
    """The naive way: one client after another, one request at a time."""
    async with bed.factory() as db:
        ids = (
            await db.exec(
                select(Client.id)
                .where(col(Client.integration_id) == bed.integration_id)
                .order_by(col(Client.id))
                .limit(sample)
            )
        ).all()
    bed.requests.reset()
    bed.engine.requests = RequestSlots(total=1, per_key=1)  # one request at a time
    started = time.monotonic()
    for client_id in ids:
        await bed.engine.sync_client(client_id, trigger="manual", full=True)
    wall = time.monotonic() - started
    return {
        "sample_clients": len(ids),
        "sample_wall_s": round(wall, 2),
        "seconds_per_client": round(wall / len(ids), 3),
        "requests_per_client": round(bed.requests.total / len(ids), 2),
        "wall_s_for_all": round(wall / len(ids) * bed.clients, 1),
        "extrapolated": len(ids) < bed.clients,
    }


def write_profile(profiler, path: str) -> None:  # type: ignore[no-untyped-def]
    Path(path).write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    say(f"  profile: {path}")


def public(figures: dict) -> dict:
    return {k: v for k, v in figures.items() if k != "synced_ids"}


async def bench_size(kind: str, clients: int, sim: Child) -> None:
    months = len(periods.window(date.today(), 2))
    concurrencies = [c for c in CONCURRENCY if skip_reason(clients, c, months) is None]
    for c in CONCURRENCY:
        if (reason := skip_reason(clients, c, months)) is not None:
            emit("sync", db=kind, clients=clients, concurrency=c, skipped=reason)
            say(f"sync {kind} N={clients} C={c}: skipped ({reason})")
    fastest: float | None = None
    for c in concurrencies:
        requests = Requests()
        async with (
            scratch_database(kind, f"sync{clients}") as url,
            outbound(30.0, max_connections=200, trace_configs=[requests.trace()]) as out,
        ):
            setup_started = time.monotonic()
            bed = await prepare(kind, url, clients, sim, out.erp, requests)
            setup = time.monotonic() - setup_started
            load = load_average()
            full = await measure(bed, c, TICK, "full")
            per_client = full["requests"] / clients
            fastest = full["wall_s"] if fastest is None else min(fastest, full["wall_s"])
            emit(
                "sync.full",
                db=kind,
                clients=clients,
                concurrency=c,
                latency_s=LATENCY,
                tick=TICK,
                months=months,
                requests_per_client=round(per_client, 2),
                request_budget_per_client=months + 3,
                setup_s=round(setup, 1),
                load_before=round(load, 2),
                **public(full),
            )
            say(
                f"sync {kind} N={clients} C={c}: full sync {full['wall_s']}s "
                f"(ideal {full['ideal_s']}s, efficiency {full['efficiency']}), "
                f"{per_client:.2f} requests/client (budget {months + 3}), "
                f"RSS peak {full['rss_peak_mb']} MB, CPU {full['cpu_ms_per_request']} ms/request "
                f"(simulator {full['sim_cpu_s']}s), failed runs {full['runs_failed']}"
            )
            changed = await change_one_percent(bed)
            tick = await measure(bed, c, TICK, "incremental")
            emit(
                "sync.incremental",
                db=kind,
                clients=clients,
                concurrency=c,
                changed=len(changed),
                touched_only_changed=tick["synced_ids"] == changed,
                **public(tick),
            )
            say(
                f"  incremental tick, {len(changed)} changed: {tick['wall_s']}s, "
                f"{tick['clients_synced']} clients synced, "
                f"only the changed: {tick['synced_ids'] == changed}, {tick['requests']} requests"
            )
            if c == concurrencies[-1] and POLLS:
                for label in ("first", "steady"):
                    await make_all_due(bed)
                    poll = await measure(bed, c, TICK, "poll")
                    emit("sync.poll", db=kind, clients=clients, concurrency=c, poll=label,
                         **public(poll))  # fmt: skip
                    say(
                        f"  poll ({label}): {poll['wall_s']}s, {poll['requests']} requests "
                        f"{poll['statuses']}, efficiency {poll['efficiency']}"
                    )
            if c == concurrencies[-1] and BASELINE_CLIENTS:
                figures = await baseline(bed, min(clients, BASELINE_CLIENTS))
                speedup = round(figures["wall_s_for_all"] / fastest, 1) if fastest else None
                emit("sync.baseline", db=kind, clients=clients, **figures,
                     our_wall_s=fastest, speedup=speedup)  # fmt: skip
                how = "extrapolated from" if figures["extrapolated"] else "measured on"
                say(
                    f"  baseline (sequential, one request at a time): "
                    f"{figures['wall_s_for_all']}s for {clients} clients ({how} "
                    f"{figures['sample_clients']}); our speed-up {speedup}x"
                )
            await bed.database.dispose()


def skip_reason(clients: int, concurrency: int, months: int) -> str | None:
    ideal = clients * (months + 1) * LATENCY / concurrency
    if ideal > MAX_IDEAL:
        return f"ideal {ideal:.0f}s > BENCH_MAX_IDEAL_SECONDS={MAX_IDEAL:.0f}"
    return None


LATENCY = float(os.environ.get("BENCH_LATENCY", "0.05"))
CONCURRENCY = env_ints("BENCH_CONCURRENCY", "8,32")
MAX_IDEAL = float(os.environ.get("BENCH_MAX_IDEAL_SECONDS", "100"))
TICK = os.environ.get("BENCH_TICK", "eager")
BASELINE_CLIENTS = int(os.environ.get("BENCH_BASELINE_CLIENTS", "20"))
POLLS = os.environ.get("BENCH_POLLS", "1") == "1"


def main() -> None:
    sizes = env_ints("BENCH_SIZES", "100,1000")
    databases = env_list("BENCH_DATABASES", "sqlite,postgresql")
    pg_sizes = env_ints("BENCH_PG_SIZES", ",".join(map(str, sizes)))
    if "postgresql" in databases and not postgres_available():
        say("PostgreSQL does not answer at BENCH_POSTGRES_URL: its runs are skipped")
        emit("sync", db="postgresql", skipped="no PostgreSQL")
        databases = [d for d in databases if d != "postgresql"]
    plan = [(kind, n) for kind in databases for n in (pg_sizes if kind == "postgresql" else sizes)]
    if not plan:
        return
    sim = start_simulator(sorted({n for _, n in plan}), LATENCY)
    tune_gc()  # as `app.py run` does before serving
    try:
        for kind, clients in plan:
            # On uvloop, as uvicorn runs the app (and with it the sync runner).
            uvloop.run(bench_size(kind, clients, sim))
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
