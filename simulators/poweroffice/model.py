"""What the simulator keeps: clients with accounts and posted vouchers, keys and tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal


@dataclass
class Account:
    id: int
    account_no: int
    name: str
    vat_code: str | None
    last_changed: datetime
    is_active: bool = True


@dataclass
class Line:
    """One account transaction: a voucher line as AccountTransactions lists it."""

    id: int
    account_no: int
    amount: Decimal  # positive debit, negative credit, two decimals


@dataclass
class Voucher:
    id: str  # a UUID, as Go's VoucherId
    voucher_no: int
    posting_date: date
    description: str
    lines: list[Line]
    created: datetime
    last_changed: datetime
    voucher_type: str = "ManualJournal"


@dataclass
class Client:
    id: int
    client_id: str  # ClientIntegrationInformation's ClientId (a UUID string)
    name: str
    org_no: str
    accounts: dict[int, Account]  # by AccountNo
    vouchers: list[Voucher] = field(default_factory=list)
    # The client's administrator has deactivated our integration (Innstillinger → Integrasjoner
    # in Go): its key still gets tokens, every data call answers 403.
    access_withdrawn: bool = False
    client_key: str | None = None  # set once onboarded


@dataclass
class OnboardingSession:
    """An Initiate call: the TemporaryUrl's token, waiting for the user's answer."""

    token: str
    application_key: str
    redirect_uri: str
    client_org_no: str | None
    valid_until: datetime
    answered: bool = False


@dataclass
class OnboardingGrant:
    """The user approved: the token the redirect carries, exchanged once by Finalize."""

    token: str
    application_key: str
    client_ids: list[int]
    user_email: str
    valid_until: datetime
    used: bool = False


@dataclass
class AccessToken:
    token: str
    client_id: int
    subscription_key: str
    expires: datetime
