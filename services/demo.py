"""Demo mode: the Tripletex simulator served beside the app, reached over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import httpx
from litestar.types import ASGIApp, Receive, Scope, Send

from services.connectors.tripletex import SYSTEM as TRIPLETEX
from services.connectors.tripletex import TripletexSettings
from services.settings import Settings

SIMULATOR_PREFIX = "/tripletex"
DEMO_KEYS = {
    "demo-regnskapskontor": "regnskapskontorets nøkkel med klienttilgang",
    "demo-eget-selskap": "nøkkel for regnskapskontorets eget selskap",
}


def simulator_root(settings: Settings) -> str:
    """The simulator's control API sits beside its `/v2`."""
    block = settings.system(TRIPLETEX)
    assert isinstance(block, TripletexSettings)
    return block.base_url.removesuffix("/v2")


def with_simulator(app: ASGIApp) -> ASGIApp:
    """Send /tripletex/... to the simulator and everything else (lifespan too) to the app."""
    from services.security_headers import SecurityHeadersMiddleware
    from simulators.tripletex import create_simulator_app, seed_demo

    # On the app's port, so under the app's headers too (a JSON API: none of them hurts it).
    simulator = SecurityHeadersMiddleware(
        create_simulator_app(seed_demo(), prefix=SIMULATOR_PREFIX), hsts=False
    )

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (
            path == SIMULATOR_PREFIX or path.startswith(SIMULATOR_PREFIX + "/")
        ):
            await simulator(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch


async def grant_new_client(
    http: httpx.AsyncClient, simulator_root: str, employee_token: str
) -> str:
    """Ask the simulator to give the key access to one more client; returns its name."""
    response = await http.post(
        f"{simulator_root}/_sim/grant-client", json={"employeeToken": employee_token}
    )
    response.raise_for_status()
    return str(response.json()["name"])


@dataclass(frozen=True)
class PostedVoucher:
    id: int
    date: date
    description: str
    amount: Decimal  # the voucher's size: the sum of its debit postings
    postings: dict[int, Decimal]  # account number → amount (debit positive), summed


async def post_demo_voucher(
    http: httpx.AsyncClient, simulator_root: str, company_id: int
) -> PostedVoucher:
    """Ask the simulator to book a small, balanced, realistic voucher (a sale, a purchase or
    a bank fee) for the company today, as if someone had posted it in Tripletex."""
    response = await http.post(f"{simulator_root}/_sim/companies/{company_id}/vouchers", json={})
    response.raise_for_status()
    data = response.json()
    postings: dict[int, Decimal] = {}
    for posting in data["postings"]:
        number = int(posting["accountNumber"])
        postings[number] = postings.get(number, Decimal("0.00")) + Decimal(str(posting["amount"]))
    return PostedVoucher(
        id=int(data["id"]),
        date=date.fromisoformat(data["date"]),
        description=str(data.get("description") or ""),
        amount=sum((a for a in postings.values() if a > 0), Decimal("0.00")),
        postings=postings,
    )
