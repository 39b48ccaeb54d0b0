"""The simulator's data: plain dataclasses, independent of how Tripletex serializes them.

Balances are never stored: they are always summed from postings, so the balance sheet, the
postings and the vouchers can never disagree.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


@dataclass
class Address:
    id: int
    address_line1: str
    postal_code: str
    city: str


@dataclass
class Account:
    id: int
    number: int
    name: str
    vat_type_id: int
    created_at: datetime
    is_inactive: bool = False
    is_bank_account: bool = False
    bank_account_number: str = ""
    is_closeable: bool = False
    require_reconciliation: bool = False
    version: int = 0
    updated_at: datetime | None = None  # the last UPDATE, shown in `changes`


@dataclass(slots=True)  # the most numerous object: tens of thousands in the demo seed
class Posting:
    id: int
    voucher_id: int
    date: date
    description: str
    account_id: int
    amount: Decimal  # debit positive, credit negative, like Tripletex
    amount_gross: Decimal
    vat_type_id: int
    row: int
    system_generated: bool = False
    version: int = 0


@dataclass
class Voucher:
    id: int
    number: int
    year: int
    date: date
    description: str
    created_at: datetime
    postings: list[Posting] = field(default_factory=list)
    version: int = 0
    updated_at: datetime | None = None


@dataclass
class Company:
    id: int
    name: str
    organization_number: str
    type: str  # the spec's Company.type enum: AS, ENK, DA, ...
    start_date: date
    email: str
    phone_number: str
    address: Address
    created_at: datetime
    # Ids for this company's vouchers and postings (see Ids.for_history); new vouchers
    # continue them once the history exists.
    voucher_ids: IdSequence
    posting_ids: IdSequence
    is_accounting_office: bool = False
    # The client's id as a customer in the office's own ledger: NOT an auth username.
    customer_company_id: int | None = None
    # False when the client has not ticked "API-tilgang" for its accounting office.
    api_access: bool = True
    accounts: list[Account] = field(default_factory=list)
    version: int = 0
    # The bookkeeping history is by far the bulk of a seed, so it is written on first use:
    # seeding stays fast and tests pay only for the companies they read.
    history: Callable[[], list[Voucher]] | None = field(default=None, repr=False)
    _vouchers: list[Voucher] | None = field(default=None, init=False, repr=False)

    @property
    def vouchers(self) -> list[Voucher]:
        if self._vouchers is None:
            self._vouchers = self.history() if self.history else []
        return self._vouchers

    def account_by_id(self, account_id: int) -> Account | None:
        return next((a for a in self.accounts if a.id == account_id), None)

    def postings(self) -> list[Posting]:
        return [p for v in self.vouchers for p in v.postings]

    def accounts_in_use(self) -> set[int]:
        """The ids of the accounts that have postings."""
        return {p.account_id for v in self.vouchers for p in v.postings}


@dataclass
class Employee:
    id: int
    first_name: str
    last_name: str
    email: str
    company_id: int
    employee_number: str = ""
    is_proxy: bool = False  # an accountant acting inside a client company
    version: int = 0


@dataclass
class EmployeeKey:
    """An employee token ("brukernøkkel") and the client companies it may act for."""

    id: int
    token: str
    employee_id: int
    company_id: int
    client_ids: list[int] = field(default_factory=list)
    # Acting for a client, the accountant is a proxy employee inside that client company.
    proxy_employee_ids: dict[int, int] = field(default_factory=dict)
    revoked: bool = False


@dataclass
class Session:
    id: int
    token: str
    consumer_token_id: int
    key_token: str
    expiration_date: date  # valid until midnight at the end of this date
    expired: bool = False  # ended early by SimulatorState.expire_sessions()


@dataclass
class Subscription:
    """A webhook subscription of one company (the Basic-auth username's), made with one key."""

    id: int
    company_id: int
    key_token: str
    event: str
    target_url: str
    created_at: datetime
    # The simulator's `/v2` base URL as the subscriber saw it: `url` fields in callbacks use it.
    api_base: str
    fields: str | None = None
    auth_header_name: str | None = None
    auth_header_value: str | None = None  # write-only
    hmac_shared_secret: str | None = None  # write-only
    status: str = "ACTIVE"
    version: int = 0
    updated_at: datetime | None = None
    consecutive_failures: int = 0


@dataclass
class BalanceRow:
    account: Account
    balance_in: Decimal
    balance_change: Decimal
    balance_out: Decimal
    start_date: date
    end_date: date  # exclusive, as in the request


class IdSequence:
    """Monotonically increasing ids for one kind of object, like Tripletex's database ids."""

    def __init__(self, start: int) -> None:
        self.start = start  # tells which company a voucher id belongs to, history loaded or not
        self._counter = itertools.count(start)

    def next(self) -> int:
        return next(self._counter)


@dataclass
class Ids:
    # Separate, non-overlapping ranges make a mixed-up id (an account id used as a company id)
    # fail loudly instead of hitting another object by accident. All stay within int32.
    company: IdSequence = field(default_factory=lambda: IdSequence(100_001))
    customer: IdSequence = field(default_factory=lambda: IdSequence(700_001))
    address: IdSequence = field(default_factory=lambda: IdSequence(500_001))
    employee: IdSequence = field(default_factory=lambda: IdSequence(20_001))
    employee_token: IdSequence = field(default_factory=lambda: IdSequence(3_001))
    session: IdSequence = field(default_factory=lambda: IdSequence(9_000_001))
    account: IdSequence = field(default_factory=lambda: IdSequence(40_000_001))
    subscription: IdSequence = field(default_factory=lambda: IdSequence(6_001))

    @staticmethod
    def for_history(company_index: int) -> tuple[IdSequence, IdSequence]:
        """Voucher and posting ids of one company's history: fixed ranges per company, so
        ids do not depend on the order in which histories happen to be generated."""
        return (
            IdSequence(100_000_001 + company_index * 10_000),
            IdSequence(1_100_000_001 + company_index * 20_000),
        )
