"""CPU cost of one Tripletex request, in instructions: repeatable where seconds are not.

On a shared 2-core machine the sync's wall-clock figures move by a third from one run to
the next (other tenants' work, CPU speed). valgrind's callgrind counts the instructions a
process executes, whatever else the machine does, so a change to the hot path can be
judged before and after on any machine of the kind:

- `client`: our Tripletex client fetching balance sheets from the simulator (in a process
  of its own, not counted; no added latency), 8 in flight, as the sync fetches them:
  instructions per request in our process, httpx's request and response, the aiohttp
  pool under them and our JSON and Decimal parsing included.
- `simulator`: the simulator answering one balance sheet (`account(number),balanceIn,
  balanceChange` for a month of a client with two years of books), in-process, HTTP not
  included: what every fetch costs the other process sharing the cores.

Each is run twice under callgrind, with few and with many requests; the difference over the
extra requests is the cost of one, start-up excluded. Needs valgrind (Debian's package).
Variables: BENCH_COST_PARTS (client,simulator), BENCH_COST_REQUESTS (200).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from datetime import date

import uvloop

from bench.common import PYTHON, ROOT, emit, env_list, say

FEW = 1
COLLECTED = re.compile(r"Collected : (\d+)")


def instructions(part: str, count: int) -> int:
    """Instructions the whole process executed for `count` requests (callgrind)."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [PYTHON, "-m", "bench.cost", "--inner", part, str(count)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    found = COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {done.stderr[-500:]}")
    return int(found.group(1))


def months(count: int) -> list[tuple[date, date]]:
    """The periods a full sync asks for, client after client (23 each)."""
    from services.sync import periods

    window = periods.window(date.today(), 2)
    return [(m.start, m.end) for m in window] * (count // len(window) + 1)


async def client_requests(count: int) -> None:
    from bench.common import start_simulator
    from bench.world import CONSUMER_TOKEN, key_for
    from services.connectors.base import CompanyRef
    from services.connectors.tripletex import TripletexClient, TripletexConnector
    from services.outbound import outbound

    sim = start_simulator([20], 0.0)
    try:
        async with outbound(30.0) as out:
            base_url = f"{sim.url}/v2"
            client = TripletexClient(out.erp, base_url=base_url, consumer_token=CONSUMER_TOKEN)
            connector = TripletexConnector(client)
            key = key_for(20)
            info = await connector.inspect_key(key)
            companies = [CompanyRef.of(c.erp_id, info.kind) for c in info.clients]
            slots = asyncio.Semaphore(8)

            async def fetch(index: int, start: date, end: date) -> None:
                async with slots:
                    await connector.fetch_balances(key, companies[index % 20], start, end)

            periods = months(count)[:count]
            await asyncio.gather(*(fetch(i, s, e) for i, (s, e) in enumerate(periods)))
    finally:
        sim.stop()


async def simulator_answers(count: int) -> None:
    from bench.world import build_world
    from simulators.tripletex.endpoints import Auth, Call, balance_sheet
    from simulators.tripletex.render import Renderer, to_json

    state = build_world([12])
    companies = [c for c in state.companies.values() if len(c.accounts) >= 80]
    fields = "account(number),balanceIn,balanceChange"
    for index, (start, end) in enumerate(months(count)[:count]):
        query = {"dateFrom": start.isoformat(), "dateTo": end.isoformat(), "fields": fields}
        call = Call(state=state, query=query, render=Renderer("http://127.0.0.1/v2"))
        call.auth = Auth(None, companies[index % len(companies)], None, None)  # type: ignore[arg-type]
        to_json((await balance_sheet(call)).body)


def main() -> None:
    if shutil.which("valgrind") is None:
        say("bench.cost: valgrind is not installed (apt-get install -y valgrind); skipped")
        emit("cost", skipped="valgrind not installed")
        return
    many = FEW + int(os.environ.get("BENCH_COST_REQUESTS", "200"))
    for part in env_list("BENCH_COST_PARTS", "client,simulator"):
        per_request = (instructions(part, many) - instructions(part, FEW)) / (many - FEW)
        emit("cost", part=part, requests=many - FEW, instructions_per_request=round(per_request))
        say(f"cost {part}: {per_request / 1e6:.2f} M instructions per balance sheet request")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inner"]:
        inner = {"client": client_requests, "simulator": simulator_answers}[sys.argv[2]]
        uvloop.run(inner(int(sys.argv[3])))  # as the app runs
    else:
        main()
