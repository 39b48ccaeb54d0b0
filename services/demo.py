"""Demo mode: asking the simulators (served beside the app, see web/plugins.py) to grant the
Tripletex key a client or book a voucher for a client, over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import httpx

from services.connectors.poweroffice import SYSTEM as POWEROFFICE
from services.connectors.poweroffice import PowerOfficeSettings
from services.connectors.tripletex import SYSTEM as TRIPLETEX
from services.connectors.tripletex import TripletexSettings
from services.settings import Settings

# The systems whose simulator runs beside the app in demo mode (web/plugins.py).
DEMO_SYSTEMS = frozenset({TRIPLETEX, POWEROFFICE})
DEMO_KEYS = {
    "demo-regnskapskontor": "regnskapskontorets nøkkel med klienttilgang",
    "demo-eget-selskap": "nøkkel for regnskapskontorets eget selskap",
}


def simulator_root(settings: Settings, system: str = TRIPLETEX) -> str:
    """Where a simulator's control API (`/_sim`) is: beside Tripletex's `/v2`, under
    PowerOffice's base URL."""
    block = settings.system(system)
    if isinstance(block, PowerOfficeSettings):
        return block.base_url
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
    http: httpx.AsyncClient, settings: Settings, system: str, erp_id: int, org_number: str
) -> PostedVoucher:
    """Ask the client's system's simulator to book a small, balanced, realistic voucher for
    it today, as if someone had posted it there."""
    root = simulator_root(settings, system)
    if system == POWEROFFICE:
        return await _poweroffice_voucher(http, root, org_number)
    response = await http.post(f"{root}/_sim/companies/{erp_id}/vouchers", json={})
    response.raise_for_status()
    data = response.json()
    postings = [(int(p["accountNumber"]), p["amount"]) for p in data["postings"]]
    return _posted(data["id"], data["date"], data.get("description"), postings)


async def _poweroffice_voucher(
    http: httpx.AsyncClient, root: str, org_number: str
) -> PostedVoucher:
    """A sale in the PowerOffice Go simulator (its client is found by org number: our
    client's id there is a UUID)."""
    listed = await http.get(f"{root}/_sim/clients")
    listed.raise_for_status()
    simulator_id = next(c["Id"] for c in listed.json() if c["OrganizationNumber"] == org_number)
    response = await http.post(
        f"{root}/_sim/clients/{simulator_id}/vouchers", json={"description": "Salg (demo)"}
    )
    response.raise_for_status()
    data = response.json()
    postings = [(int(line["AccountNo"]), line["Amount"]) for line in data["Lines"]]
    return _posted(data["VoucherNo"], data["PostingDate"], data.get("Description"), postings)


def _posted(
    number: object, day: str, description: object, postings: list[tuple[int, object]]
) -> PostedVoucher:
    summed: dict[int, Decimal] = {}
    for account, amount in postings:
        summed[account] = summed.get(account, Decimal("0.00")) + Decimal(str(amount))
    return PostedVoucher(
        id=int(str(number)),
        date=date.fromisoformat(day[:10]),
        description=str(description or ""),
        amount=sum((a for a in summed.values() if a > 0), Decimal("0.00")),
        postings=summed,
    )
