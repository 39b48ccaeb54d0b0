"""PowerOffice Go: requests (and bytes) per client for a full sync and a poll, by the two ways
the API offers to get monthly balances (issue 18: "measure both").

A. Month-end trial balances: `GET /TrialBalance?date=` at the day before the window and at
   each month end (24 for 23 months), plus the chart.
B. What the connector does for a full sync: per year, the trial balance of the day before it
   and the year's `GET /AccountTransactions` (paged, PageSize 5000), summed per account and
   month into the same month-end trial balances.

Both run for every client of the simulator's demo partner (about 440 lines each) and for the
same clients with BENCH_PO_LINES extra lines (default 20,000, a busy small business's two
years); B's months are checked equal to A's, to the øre. The poll figures are the
connector's: an unchanged poll, and one after a voucher.

    python -m bench.poweroffice_requests
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx

from bench.common import emit, say
from services.connectors.base import CompanyRef
from services.connectors.poweroffice import PowerOfficeClient, PowerOfficeConnector
from services.sync.periods import Month, window
from simulators.poweroffice import (
    DEMO_APPLICATION_KEY,
    DEMO_SUBSCRIPTION_KEY,
    create_poweroffice_app,
    seed_demo,
)
from simulators.poweroffice.state import PowerOfficeState

TODAY = date(2025, 11, 20)
PREFIX = "/poweroffice"
PAGE_SIZE = 5000
EXTRA_LINES = int(os.environ.get("BENCH_PO_LINES", "20000"))
ZERO = Decimal("0.00")


class Counting(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests = 0
        self.bytes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.requests += 1
        self.bytes += len(response.content)
        return response

    def reset(self) -> None:
        self.requests = self.bytes = 0


def month_span(month: Month) -> tuple[date, date]:
    start = date(month.year, month.month, 1)
    return start, date(start.year + start.month // 12, start.month % 12 + 1, 1)


def add_lines(state: PowerOfficeState, client_id: int, count: int) -> None:
    """Busy days: balanced two-line vouchers spread over the window."""
    rng = random.Random(client_id)
    client = state.clients[client_id]
    revenue = [n for n in client.accounts if 3000 <= n < 4000] or [3000]
    cost = [n for n in client.accounts if 4000 <= n < 8000] or [6300]
    first = date(TODAY.year - 1, 1, 1)
    days = (TODAY - first).days
    for _ in range(count // 2):
        amount = Decimal(rng.randint(100, 5_000_000)) / 100
        account = rng.choice(revenue + cost)
        sign = -1 if account in revenue else 1
        state.post_voucher(
            client_id,
            [(1920, -sign * amount), (account, sign * amount)],
            posting_date=first + timedelta(days=rng.randrange(days)),
        )


async def by_trial_balances(
    client: PowerOfficeClient, key: str, months: list[Month]
) -> dict[date, dict[int, Decimal]]:
    """Strategy A: the trial balance of the day before the window and of each month end."""
    days = [month_span(months[0])[0] - timedelta(days=1)]
    days += [month_span(m)[1] - timedelta(days=1) for m in months]
    answers = await asyncio.gather(
        *(client.rows(key, "/TrialBalance", {"date": day.isoformat()}) for day in days)
    )
    return {
        day: {int(r["AccountNo"]): Decimal(str(r["Balance"])) for r in rows}
        for day, rows in zip(days, answers, strict=True)
    }


async def poll(
    connector: PowerOfficeConnector, key: str, company: CompanyRef, months: list[Month]
) -> None:
    """What the sync engine asks when polling: the chart and the recent months, conditional,
    and which older months changed."""
    await connector.changed_months(key, company)
    await connector.fetch_accounts(key, company, conditional=True)
    for m in months[-2:]:
        await connector.fetch_balances(key, company, *month_span(m), conditional=True)


def nonzero(sums: dict[int, Decimal]) -> dict[int, Decimal]:
    return {n: v for n, v in sums.items() if v}


async def measure(extra_lines: int) -> Iterator[dict[str, Any]]:
    state = seed_demo(TODAY)
    for client_id in state.clients:
        if extra_lines:
            add_lines(state, client_id, extra_lines)
    app = create_poweroffice_app(state, prefix=PREFIX)
    counting = Counting(httpx.ASGITransport(app=app))
    months = window(TODAY, 2)
    results = []
    for simulator_id, books in sorted(state.clients.items()):
        if books.access_withdrawn:
            continue
        books.client_key = f"bench-key-{simulator_id}"
        lines = sum(len(v.lines) for v in books.vouchers)
        row: dict[str, Any] = {"client": books.name, "lines_all_time": lines}
        # Each strategy with its own client: no token or cache shared between them.
        for name in ("trial_balances", "connector"):
            client = PowerOfficeClient(
                counting,
                base_url=f"http://sim{PREFIX}",
                application_key=DEMO_APPLICATION_KEY,
                subscription_key=DEMO_SUBSCRIPTION_KEY,
            )
            moment = [1000.0]  # the connector's monotonic clock, moved on between polls
            connector = PowerOfficeConnector(
                client,
                clock=lambda moment=moment: moment[0],  # type: ignore[misc]
                wall_clock=state.clock.now,
            )
            company = CompanyRef(erp_id=simulator_id)
            counting.reset()
            if name == "trial_balances":
                await client.rows(books.client_key, "/GeneralLedgerAccounts")
                by_day = await by_trial_balances(client, books.client_key, months)
                row["full_requests_a"], row["full_bytes_a"] = counting.requests, counting.bytes
                continue
            await connector.fetch_accounts(books.client_key, company)
            fetched = await asyncio.gather(
                *(
                    connector.fetch_balances(books.client_key, company, *month_span(m))
                    for m in months
                )
            )
            row["full_requests_b"], row["full_bytes_b"] = counting.requests, counting.bytes
            # B's closing of every month equals A's trial balance of its last day.
            for m, balances in zip(months, fetched, strict=True):
                closing = {
                    n: balances.opening.get(n, ZERO) + balances.movement.get(n, ZERO)
                    for n in balances.opening.keys() | balances.movement.keys()
                }
                last = month_span(m)[1] - timedelta(days=1)
                assert nonzero(closing) == nonzero(by_day[last]), (books.name, m)
            # Polls: unchanged, then after a voucher today.
            moment[0] += 600
            counting.reset()
            await poll(connector, books.client_key, company, months)
            row["poll_unchanged_requests"] = counting.requests
            state.clock.advance(60)
            moment[0] += 600
            state.post_voucher(simulator_id, [(1920, Decimal("10.00")), (3000, Decimal("-10.00"))])
            counting.reset()
            await poll(connector, books.client_key, company, months)
            row["poll_changed_requests"] = counting.requests
            state.clock.advance(60)
        results.append(row)
    return iter(results)


def summarise(label: str, rows: list[dict[str, Any]]) -> None:
    def avg(key: str) -> float:
        return sum(r[key] for r in rows) / len(rows)

    figures = {
        key: round(avg(key), 1)
        for key in (
            "lines_all_time",
            "full_requests_a",
            "full_requests_b",
            "full_bytes_a",
            "full_bytes_b",
            "poll_unchanged_requests",
            "poll_changed_requests",
        )
    }
    emit("poweroffice_requests", case=label, clients=len(rows), **figures)
    say(
        f"{label}: {len(rows)} clients, {figures['lines_all_time']:.0f} lines each; full sync "
        f"A (month-end trial balances) {figures['full_requests_a']:.1f} requests / "
        f"{figures['full_bytes_a'] / 1024:.0f} KiB, B (the connector: a year's lines) "
        f"{figures['full_requests_b']:.1f} requests / {figures['full_bytes_b'] / 1024:.0f} KiB; "
        f"poll unchanged {figures['poll_unchanged_requests']:.1f}, "
        f"after a voucher {figures['poll_changed_requests']:.1f}"
    )


async def main() -> None:
    for label, extra in (("demo", 0), (f"busy (+{EXTRA_LINES} lines)", EXTRA_LINES)):
        summarise(label, list(await measure(extra)))


if __name__ == "__main__":
    asyncio.run(main())
