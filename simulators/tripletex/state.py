"""The simulator's whole world in memory, the demo seed, and the operations on it."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from simulators.tripletex.accounts import is_balance_account
from simulators.tripletex.faults import Faults, RateLimiter, RateStatus
from simulators.tripletex.generate import (
    CLIENT_NAMES,
    NO_API_ACCESS_NAME,
    build_company,
    new_client_name,
)
from simulators.tripletex.live import LiveChanges
from simulators.tripletex.model import (
    BalanceRow,
    Company,
    Employee,
    EmployeeKey,
    Ids,
    Session,
    Subscription,
)
from simulators.tripletex.webhooks import Delivery, Webhooks

DEMO_CONSUMER_TOKEN = "demo-consumer-token"
DEMO_ACCOUNTANT_TOKEN = "demo-regnskapskontor"
DEMO_OWN_COMPANY_TOKEN = "demo-eget-selskap"
OFFICE_NAME = "Regnskapshuset Demo AS"
ZERO = Decimal("0.00")


class UnknownKey(KeyError):
    """No employee token with that value exists (or it was revoked)."""


@dataclass
class SimulatorState(LiveChanges):
    office_company_id: int
    no_api_access_client_id: int
    companies: dict[int, Company] = field(default_factory=dict)
    employees: dict[int, Employee] = field(default_factory=dict)
    keys: dict[str, EmployeeKey] = field(default_factory=dict)
    consumer_tokens: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    ids: Ids = field(default_factory=Ids)
    # None follows the real calendar; tests and benchmarks pin a date (and move it forward).
    fixed_today: date | None = None
    # The date the seeded history runs up to; new clients get history up to `today` instead.
    seeded_until: date = field(default_factory=date.today)
    org_numbers: set[str] = field(default_factory=set)
    clients_created: int = 0
    # Fault injection: while set, every /v2 call answers with this status (e.g. 503).
    outage_status: int | None = None
    faults: Faults = field(default_factory=Faults)
    # Seconds for the rate limiter's periods; tests substitute a fake clock instead of sleeping.
    clock: Callable[[], float] = time.monotonic
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    webhooks: Webhooks = field(default_factory=Webhooks)
    # Real Tripletex calls only HTTPS targets; loopback HTTP is always allowed, any HTTP with this.
    allow_http_webhooks: bool = False

    @property
    def today(self) -> date:
        return self.fixed_today or date.today()

    @today.setter
    def today(self, value: date) -> None:
        self.fixed_today = value

    @property
    def deliveries(self) -> list[Delivery]:
        """Every webhook delivery so far (event, target, status, attempts, ...)."""
        return self.webhooks.deliveries

    # -- lookups ---------------------------------------------------------------------------

    def company(self, company_id: int) -> Company | None:
        return self.companies.get(company_id)

    def office(self) -> Company:
        return self.companies[self.office_company_id]

    def key(self, employee_token: str) -> EmployeeKey:
        key = self.keys.get(employee_token)
        if key is None or key.revoked:
            raise UnknownKey(employee_token)
        return key

    def clients_of(self, employee_token: str) -> list[Company]:
        """The clients the key may act for, ordered by id as Tripletex lists them."""
        key = self.key(employee_token)
        return [self.companies[cid] for cid in sorted(key.client_ids)]

    def client_by_name(self, name: str) -> Company:
        return next(c for c in self.companies.values() if c.name == name)

    # -- control operations ----------------------------------------------------------------

    def grant_new_client(self, employee_token: str) -> Company:
        """A brand-new client company (accounts, vouchers) that the key may now act for."""
        key = self.key(employee_token)
        index = len(CLIENT_NAMES) + 1 + self.clients_created
        name, company_type = new_client_name(index, {c.name for c in self.companies.values()})
        client = self._add_client(index, name, company_type, self.today)
        self.clients_created += 1
        self._grant(key, client)
        return client

    def revoke_client(self, employee_token: str, company_id: int) -> None:
        """The office loses client access ("Klienttilgang") to that company."""
        key = self.key(employee_token)
        if company_id not in key.client_ids:
            raise KeyError(company_id)
        key.client_ids.remove(company_id)

    def revoke_key(self, employee_token: str) -> None:
        """The employee token is deleted in Tripletex: its sessions stop working at once."""
        self.key(employee_token).revoked = True

    # -- sessions --------------------------------------------------------------------------

    def create_session(self, consumer_token: str, employee_token: str, expires: date) -> Session:
        key = self.key(employee_token)
        session_id = self.ids.session.next()
        # Real session tokens are base64 of a small JSON document; mimic the shape so clients
        # never assume a format (length, alphabet) that real Tripletex would break.
        raw = json.dumps({"tokenId": session_id, "token": str(uuid.uuid4())}, separators=(",", ":"))
        session = Session(
            id=session_id,
            token=base64.b64encode(raw.encode()).decode(),
            consumer_token_id=self.consumer_tokens[consumer_token],
            key_token=key.token,
            expiration_date=expires,
        )
        self.sessions[session.token] = session
        return session

    def valid_session(self, token: str) -> Session | None:
        """The session, if it exists, has not passed midnight of its expiration date, and its
        key still exists."""
        session = self.sessions.get(token)
        if session is None or session.expired or self.today > session.expiration_date:
            return None
        key = self.keys.get(session.key_token)
        return None if key is None or key.revoked else session

    def expire_sessions(self) -> None:
        """Every session token issued so far answers 401 from now on; new ones work."""
        for session in self.sessions.values():
            session.expired = True

    # -- faults and pacing -----------------------------------------------------------------

    def set_faults(self, **changes: Any) -> Faults:
        """Change fault settings (Faults field names); restarts the failure sequence from
        `fault_seed` and the rate-limit periods. ValueError on a bad setting."""
        self.faults = self.faults.updated(changes)
        self.rate_limiter = RateLimiter()
        return self.faults

    def count_request(self, session: Session) -> RateStatus:
        """One request against the budget of the session's consumer and employee token."""
        bucket = (session.consumer_token_id, session.key_token)
        return self.rate_limiter.hit(bucket, self.faults, self.clock())

    # -- ledger ----------------------------------------------------------------------------

    def balance_sheet(
        self,
        company_id: int,
        date_from: date,
        date_to: date,
        *,
        account_number_from: int | None = None,
        account_number_to: int | None = None,
        include_active_accounts_without_movements: bool = False,
    ) -> list[BalanceRow]:
        """Saldobalanse: per account, balance at `date_from`, movement up to `date_to`
        (exclusive), and the resulting balance. Result accounts (3000–8999) restart at zero on
        1 January, so their opening balance only counts the current year."""
        company = self.companies[company_id]
        year_start = date(date_from.year, 1, 1)
        opening: dict[int, Decimal] = {}
        change: dict[int, Decimal] = {}
        balance_accounts = {a.id for a in company.accounts if is_balance_account(a.number)}
        for voucher in company.vouchers:
            day = voucher.date  # its postings' date too (ledger.book)
            if day >= date_to:
                continue
            # Before the period: balance accounts always, result accounts this year only.
            sums, every = (change, True) if day >= date_from else (opening, day >= year_start)
            for posting in voucher.postings:
                if every or posting.account_id in balance_accounts:
                    sums[posting.account_id] = sums.get(posting.account_id, ZERO) + posting.amount
        rows = []
        for account in sorted(company.accounts, key=lambda a: a.number):
            if account_number_from is not None and account.number < account_number_from:
                continue
            if account_number_to is not None and account.number >= account_number_to:
                continue
            moved = account.id in opening or account.id in change
            wanted_anyway = include_active_accounts_without_movements and not account.is_inactive
            if not moved and not wanted_anyway:
                continue
            balance_in = opening.get(account.id, ZERO)
            balance_change = change.get(account.id, ZERO)
            rows.append(
                BalanceRow(
                    account=account,
                    balance_in=balance_in,
                    balance_change=balance_change,
                    balance_out=balance_in + balance_change,
                    start_date=date_from,
                    end_date=date_to,
                )
            )
        return rows

    # -- building --------------------------------------------------------------------------

    def _add_client(self, index: int, name: str, company_type: str, until: date) -> Company:
        client = build_company(
            ids=self.ids,
            index=index,
            name=name,
            company_type=company_type,
            today=until,
            taken_org_numbers=self.org_numbers,
            customer_company_id=self.ids.customer.next(),
        )
        self.companies[client.id] = client
        return client

    def _grant(self, key: EmployeeKey, client: Company) -> None:
        key.client_ids.append(client.id)
        accountant = self.employees[key.employee_id]
        proxy = Employee(
            id=self.ids.employee.next(),
            first_name=accountant.first_name,
            last_name=accountant.last_name,
            email=accountant.email,
            company_id=client.id,
            is_proxy=True,
        )
        self.employees[proxy.id] = proxy
        key.proxy_employee_ids[client.id] = proxy.id

    def _add_key(self, token: str, employee: Employee) -> EmployeeKey:
        self.employees[employee.id] = employee
        key = EmployeeKey(
            id=self.ids.employee_token.next(),
            token=token,
            employee_id=employee.id,
            company_id=employee.company_id,
        )
        self.keys[token] = key
        return key


def office_world(
    office_name: str, consumer_token: str, today: date | None = None
) -> SimulatorState:
    """An empty world but for the accounting office and our application's consumer token:
    what the demo seed and the benchmarks each fill with keys and clients."""
    until = today or date.today()
    ids = Ids()
    org_numbers: set[str] = set()
    office = build_company(
        ids=ids,
        index=0,
        name=office_name,
        company_type="AS",
        today=until,
        taken_org_numbers=org_numbers,
        is_accounting_office=True,
    )
    return SimulatorState(
        office_company_id=office.id,
        no_api_access_client_id=0,
        companies={office.id: office},
        consumer_tokens={consumer_token: 1},
        ids=ids,
        fixed_today=today,
        seeded_until=until,
        org_numbers=org_numbers,
    )


def seed_demo(today: date | None = None) -> SimulatorState:
    """The demo world: one accounting office, its two keys and 42 clients with history for
    last year and this year up to `today`. Same `today`, same data: ids, names, amounts."""
    state = office_world(OFFICE_NAME, DEMO_CONSUMER_TOKEN, today)
    until, ids, office = state.seeded_until, state.ids, state.office()
    accountant = state._add_key(
        DEMO_ACCOUNTANT_TOKEN,
        Employee(
            id=ids.employee.next(),
            first_name="Ingrid",
            last_name="Solberg",
            email="ingrid.solberg@regnskapshuset-demo.no",
            company_id=office.id,
            employee_number="101",
        ),
    )
    state._add_key(
        DEMO_OWN_COMPANY_TOKEN,
        Employee(
            id=ids.employee.next(),
            first_name="Henrik",
            last_name="Vold",
            email="henrik.vold@regnskapshuset-demo.no",
            company_id=office.id,
            employee_number="100",
        ),
    )
    for index, (name, company_type) in enumerate(CLIENT_NAMES, start=1):
        client = state._add_client(index, name, company_type, until)
        client.api_access = name != NO_API_ACCESS_NAME
        state._grant(accountant, client)
    state.no_api_access_client_id = state.client_by_name(NO_API_ACCESS_NAME).id
    return state
