"""What every ERP connector offers, and the errors it raises.

ErpError
├── KeyRejected       the key is wrong, expired or revoked (401)
├── AccessDenied      the key may not act for that company (403)
├── RateLimited       the ERP asks us to slow down (429), after our own retries
└── ErpUnavailable    timeouts, connection failures, 5xx, after our own retries
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import httpx

    from services.metrics import Metrics


class KeyKind(StrEnum):
    """What a key reaches (stored as `Integration.key_kind`)."""

    ACCOUNTANT = "accountant"  # acts for the client companies granted to it
    OWN_COMPANY = "own_company"  # the office's own ledger: exactly one client


class ConnectKind(StrEnum):
    """How an office connects a system: the UI asks this rather than assume."""

    KEY = "key"  # the accountant pastes a key made in the system
    ONBOARDING = "onboarding"  # the accountant signs in at the system and approves
    FILE = "file"  # the accountant uploads the system's export


@dataclass(frozen=True)
class Capabilities:
    """What a system can do; the UI and the scheduler ask, never assume."""

    connect: ConnectKind
    webhooks: bool  # the system calls us on changes (else live means polling)


@dataclass(frozen=True)
class Wording:
    """What the accountant is told about a system's own steps (Norwegian), beside its name."""

    no_api_access: str  # a client that has not given the office access: where to fix it
    access_lost: str  # a client the key no longer reaches: what to do
    no_clients: str  # an integration that reaches no clients yet: what to do
    guide_path: str | None = None  # our setup guide for the system


class ErpError(Exception):
    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class KeyRejected(ErpError):
    pass


class AccessDenied(ErpError):
    pass


class RateLimited(ErpError):
    pass


class ErpUnavailable(ErpError):
    pass


@dataclass
class RequestStats:
    """Counted by a connector's HTTP client for whoever set `request_stats` (a sync run)."""

    requests: int = 0
    retries: int = 0


request_stats: ContextVar[RequestStats | None] = ContextVar("request_stats", default=None)


@dataclass(frozen=True)
class RemoteClient:
    """A client company as the ERP lists it."""

    erp_id: int
    name: str
    org_number: str


@dataclass(frozen=True)
class KeyInfo:
    """What a key is: whose it is, and which companies it reaches."""

    company_id: int
    company_name: str
    kind: KeyKind
    clients: list[RemoteClient] = field(default_factory=list)


@dataclass(frozen=True)
class CompanyRef:
    """Which company a call is about: a client reached through the key, or the key's own."""

    erp_id: int
    is_own_company: bool = False

    @classmethod
    def of(cls, erp_id: int, key_kind: str) -> CompanyRef:
        """A client of an integration: the key's own company when that is all it reaches."""
        return cls(erp_id=erp_id, is_own_company=key_kind == KeyKind.OWN_COMPANY)


@dataclass(frozen=True)
class RemoteAccount:
    erp_id: int
    number: int
    name: str
    type: str = ""
    is_inactive: bool = False
    is_bank_account: bool = False
    vat_code: str | None = None
    saft_code: str | None = None
    grouping_code: str | None = None
    grouping_category: str | None = None


@dataclass(frozen=True)
class Balances:
    """One period of a saldobalanse: per account number, the balance at `date_from` and the
    movement until `date_to` (exclusive)."""

    date_from: date
    date_to: date
    opening: dict[int, Decimal]
    movement: dict[int, Decimal]
    unchanged: bool = False  # the ERP said nothing changed since our last fetch (304)


@dataclass(frozen=True)
class RemoteSubscription:
    """A change subscription as the ERP reports it."""

    erp_id: int
    event: str
    target_url: str
    active: bool
    status: str


@dataclass(frozen=True)
class ChangeEvent:
    """One verified callback: what changed. `day` is the voucher's date where the ERP gave
    it (None for deletions and account events)."""

    subscription_id: int
    event: str
    object_id: int
    day: date | None = None


class CallbackRejected(Exception):
    """A callback that is not what the ERP would send (bad signature, malformed body)."""


class SystemDescription(Protocol):
    """What pages show of a system: a connector, or a stand-in for a system this
    installation has no connector for."""

    system: str
    display_name: str
    capabilities: Capabilities
    wording: Wording


@runtime_checkable
class Connector(Protocol):
    system: str  # the registry's key, stored as `Integration.system`
    display_name: str  # how the accountant knows the system
    capabilities: Capabilities
    wording: Wording

    async def inspect_key(self, key: str) -> KeyInfo:
        """Check the key against the ERP now and list the companies it reaches."""
        ...

    async def fetch_accounts(
        self, key: str, company: CompanyRef, *, conditional: bool = False
    ) -> list[RemoteAccount] | None:
        """The whole chart of accounts; raises rather than return a partial list. With
        `conditional`, None when the ERP says it is unchanged since this process last
        fetched it."""
        ...

    async def fetch_balances(
        self,
        key: str,
        company: CompanyRef,
        date_from: date,
        date_to: date,
        *,
        conditional: bool = False,
    ) -> Balances:
        """The saldobalanse of a period; with `conditional`, `unchanged` when the ERP says
        nothing changed since this process last fetched it."""
        ...

    def forget_cache(self, company: CompanyRef) -> None:
        """After a failed sync: forget what conditional fetches compare against."""
        ...

    # Live changes: the events a client is subscribed to, one subscription per event.
    events: tuple[str, ...]

    async def subscribe(
        self, key: str, company: CompanyRef, event: str, target_url: str, secret: str
    ) -> RemoteSubscription:
        """Ask the ERP to call `target_url` on `event`, signing each call with `secret`."""
        ...

    async def renew_subscription(
        self, key: str, company: CompanyRef, erp_id: int
    ) -> RemoteSubscription:
        """Switch a subscription the ERP disabled back on."""
        ...

    async def unsubscribe(self, key: str, company: CompanyRef, erp_id: int) -> None:
        """Remove a subscription; one the ERP no longer knows counts as removed."""
        ...

    async def list_subscriptions(
        self, key: str, company: CompanyRef
    ) -> list[RemoteSubscription]: ...

    def read_callback(self, secret: str, headers: dict[str, str], body: bytes) -> ChangeEvent:
        """Verify a callback (constant time) and parse it; raises CallbackRejected."""
        ...

    def callback_id(self, headers: dict[str, str]) -> str | None:
        """What identifies a delivery across the ERP's retries (for replay rejection)."""
        ...


@runtime_checkable
class ReportsChangedMonths(Protocol):
    """A connector of a system without webhooks that can tell, cheaply, which months'
    movements changed since it last looked (PowerOffice Go's change filters)."""

    async def changed_months(self, key: str, company: CompanyRef) -> set[tuple[int, int]]:
        """(year, month) of the changes seen since the last call for this client; empty
        when this process has fetched nothing for it yet (its next fetches are fresh)."""
        ...


@dataclass(frozen=True)
class RemotePosting:
    """One line of the general ledger (hovedbok) on one account, as the ERP gives it."""

    date: date
    voucher_number: str
    description: str
    amount: Decimal


@runtime_checkable
class ReportsPostings(Protocol):
    """A connector that can list the postings behind an account's movement (drill-down from
    the saldobalanse to the hovedbok)."""

    async def fetch_postings(
        self,
        key: str,
        company: CompanyRef,
        account_number: int,
        date_from: date,
        date_to: date,
    ) -> list[RemotePosting]:
        """The account's postings dated `date_from` up to `date_to` (exclusive, as the
        saldobalanse counts), sorted by date; every page, never a part."""
        ...


@runtime_checkable
class FileSystem(Protocol):
    """A system whose data arrives as files (ConnectKind.FILE): nothing is fetched."""

    system: str
    display_name: str
    capabilities: Capabilities
    wording: Wording
    max_upload_bytes: int
    upload_dir: Path  # where uploads are written while they are imported


class SystemSettings(Protocol):
    """A system's settings block: read from the environment at start (a bad variable raises
    SettingsError naming it), and the maker of the system's connector."""

    system: str

    def connector(
        self, http: httpx.AsyncBaseTransport, metrics: Metrics
    ) -> Connector | FileSystem: ...


class SystemSettingsFactory(Protocol):
    def from_env(self, env: Mapping[str, str], *, demo: bool, port: int) -> SystemSettings | None:
        """The block, or None when the system is optional and not set up here."""
        ...
