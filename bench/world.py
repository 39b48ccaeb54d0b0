"""The benchmark's Tripletex world: one accounting office whose keys reach N clients each.

Clients 1..TEMPLATES have bookkeeping of their own (build_scaled_template); the rest share a
template's chart and history (clone_company), so 5,000 clients build in seconds and fit in
tens of megabytes of the simulator's memory. Every client has 80 accounts and two years of
vouchers up to today. The key `bench-N` reaches the first N clients.
"""

from __future__ import annotations

from datetime import date

from services.tripletex_sim import SimulatorState
from services.tripletex_sim.generate import build_company, build_scaled_template, clone_company
from services.tripletex_sim.model import Employee, Ids

TEMPLATES = 50
OFFICE_NAME = "Regnskapsbyrået Benchmark AS"
CONSUMER_TOKEN = "bench-consumer-token"  # not the demo's: the app refuses that one outside demo


def key_for(clients: int) -> str:
    return f"bench-{clients}"


def build_world(sizes: list[int], today: date | None = None) -> SimulatorState:
    until = today or date.today()
    ids, taken = Ids(), set[str]()
    office = build_company(
        ids=ids,
        index=0,
        name=OFFICE_NAME,
        company_type="AS",
        today=until,
        taken_org_numbers=taken,
        is_accounting_office=True,
    )
    state = SimulatorState(
        office_company_id=office.id,
        no_api_access_client_id=0,
        companies={office.id: office},
        consumer_tokens={CONSUMER_TOKEN: 1},
        ids=ids,
        fixed_today=today,
        seeded_until=until,
        org_numbers=taken,
    )
    clients = []
    for index in range(1, max(sizes) + 1):
        if index <= TEMPLATES:
            client = build_scaled_template(ids=ids, index=index, today=until, taken=taken)
        else:
            template = clients[(index - 1) % TEMPLATES]
            client = clone_company(template, ids=ids, index=index, taken=taken)
        state.companies[client.id] = client
        clients.append(client)
    for n in sorted(set(sizes)):
        key = state._add_key(
            key_for(n),
            Employee(
                id=ids.employee.next(),
                first_name="Bente",
                last_name="Benk",
                email=f"bente.benk.{n}@benchmark.example",
                company_id=office.id,
            ),
        )
        for client in clients[:n]:
            state._grant(key, client)
    return state
