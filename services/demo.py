"""Demo mode: asking the Tripletex simulator (served beside the app, see web/plugins.py) to
grant the key a client or book a voucher, over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import httpx

from services.connectors.tripletex import SYSTEM as TRIPLETEX
from services.connectors.tripletex import TripletexSettings
from services.settings import Settings

# The systems whose simulator runs beside the app in demo mode (web/plugins.py).
DEMO_SYSTEMS = frozenset({TRIPLETEX})
DEMO_KEYS = {
    "demo-regnskapskontor": "regnskapskontorets nøkkel med klienttilgang",
    "demo-eget-selskap": "nøkkel for regnskapskontorets eget selskap",
}


def simulator_root(settings: Settings) -> str:
    """The simulator's control API sits beside its `/v2`."""
    block = settings.system(TRIPLETEX)
    assert isinstance(block, TripletexSettings)
    return block.base_url.removesuffix("/v2")


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
