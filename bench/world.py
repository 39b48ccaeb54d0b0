"""The benchmark's Tripletex world: one accounting office whose keys reach N clients each.

Clients 1..TEMPLATES have bookkeeping of their own (build_scaled_template); the rest share a
template's chart and history (clone_company), so 5,000 clients build in seconds and fit in
tens of megabytes of the simulator's memory. Every client has 80 accounts and two years of
vouchers up to today. The key `bench-N` reaches the first N clients.
"""

from __future__ import annotations

from datetime import date

from simulators.tripletex import SimulatorState
from simulators.tripletex.generate import build_scaled_template, clone_company
from simulators.tripletex.model import Employee
from simulators.tripletex.state import office_world

TEMPLATES = 50
OFFICE_NAME = "Regnskapsbyrået Benchmark AS"
CONSUMER_TOKEN = "bench-consumer-token"  # not the demo's: the app refuses that one outside demo


def key_for(clients: int) -> str:
    return f"bench-{clients}"


def build_world(sizes: list[int], today: date | None = None) -> SimulatorState:
    state = office_world(OFFICE_NAME, CONSUMER_TOKEN, today)
    until, ids, taken, office = state.seeded_until, state.ids, state.org_numbers, state.office()
    clients = []
    for index in range(1, max(sizes) + 1):
        if index <= TEMPLATES:
            client = build_scaled_template(ids=ids, index=index, today=until, taken=taken)
        else:
            template = clients[(index - 1) % TEMPLATES]
            client = clone_company(template, ids=ids, index=index, taken=taken)
        state.companies[client.id] = client
        clients.append(client)
    for client in clients:
        # Tripletex's books exist before anyone asks. The simulator writes them on first use
        # (tests pay only for what they read); here that would bill the making to the
        # sync being measured.
        client.vouchers  # noqa: B018
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
