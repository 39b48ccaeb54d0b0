"""The simulated PowerOffice Go world in memory: a partner's clients, onboarding, keys,
access tokens, and the ledger queries the API answers. The demo seed is `seed_demo()`."""

from __future__ import annotations

import itertools
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from simulators.poweroffice.chart import is_balance_account
from simulators.poweroffice.clock import OSLO, Clock
from simulators.poweroffice.faults import Faults, RateLimiter
from simulators.poweroffice.generate import CLIENT_NAMES, WITHDRAWN_NAME, build_client, money
from simulators.poweroffice.model import (
    AccessToken,
    Account,
    Client,
    Line,
    OnboardingGrant,
    OnboardingSession,
    Voucher,
)

DEMO_APPLICATION_KEY = "3f1c9a57-2b7e-4d1a-9c52-6a0e8b4d7f21"
DEMO_SUBSCRIPTION_KEY = "5e0c2a9b7d4f41c3a8e6b1d9f0a7c3e2"
DEMO_USER_EMAIL = "ingrid.solberg@regnskapshuset-demo.no"
# How long Initiate's TemporaryUrl and the approved onboarding token stay usable.
ONBOARDING_URL_LIFETIME = timedelta(minutes=15)
ONBOARDING_TOKEN_LIFETIME = timedelta(minutes=10)
ZERO = Decimal("0.00")


class Refused(ValueError):
    """A state change the simulator refuses (unknown id, unbalanced voucher, ...)."""


@dataclass
class PowerOfficeState:
    clients: dict[int, Client] = field(default_factory=dict)
    application_keys: set[str] = field(default_factory=lambda: {DEMO_APPLICATION_KEY})
    subscription_keys: set[str] = field(default_factory=lambda: {DEMO_SUBSCRIPTION_KEY})
    user_email: str = DEMO_USER_EMAIL
    clock: Clock = field(default_factory=Clock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000001))
    sessions: dict[str, OnboardingSession] = field(default_factory=dict)
    grants: dict[str, OnboardingGrant] = field(default_factory=dict)
    tokens: dict[str, AccessToken] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    rate_clock: Callable[[], float] = time.monotonic  # seconds, for the rate-limit periods

    # -- lookups ---------------------------------------------------------------------------

    def client(self, client_id: int) -> Client:
        found = self.clients.get(client_id)
        if found is None:
            raise Refused(f"No client {client_id}")
        return found

    def client_by_name(self, name: str) -> Client:
        return next(c for c in self.clients.values() if c.name == name)

    def client_by_key(self, client_key: str) -> Client | None:
        return next((c for c in self.clients.values() if c.client_key == client_key), None)

    # -- onboarding ------------------------------------------------------------------------

    def initiate_onboarding(
        self, application_key: str, redirect_uri: str, client_org_no: str | None
    ) -> OnboardingSession:
        session = OnboardingSession(
            token=secrets.token_urlsafe(72),
            application_key=application_key,
            redirect_uri=redirect_uri,
            client_org_no=client_org_no,
            valid_until=self.clock.now() + ONBOARDING_URL_LIFETIME,
        )
        self.sessions[session.token] = session
        return session

    def open_session(self, token: str) -> OnboardingSession | None:
        """The onboarding the TemporaryUrl belongs to, while it may still be answered."""
        session = self.sessions.get(token)
        if session is None or session.answered or self.clock.now() > session.valid_until:
            return None
        return session

    def offered_clients(self, session: OnboardingSession) -> list[Client]:
        """What the approval page lists: the one client asked for, else every client the
        partner user reaches."""
        clients = sorted(self.clients.values(), key=lambda c: c.name)
        if session.client_org_no:
            return [c for c in clients if c.org_no == session.client_org_no]
        return clients

    def approve(self, session: OnboardingSession, client_ids: Iterable[int]) -> OnboardingGrant:
        offered = {c.id for c in self.offered_clients(session)}
        chosen = sorted(set(client_ids))
        if not chosen or not set(chosen) <= offered:
            raise Refused("Choose at least one of the clients offered")
        session.answered = True
        grant = OnboardingGrant(
            token=secrets.token_urlsafe(72),
            application_key=session.application_key,
            client_ids=chosen,
            user_email=self.user_email,
            valid_until=self.clock.now() + ONBOARDING_TOKEN_LIFETIME,
        )
        self.grants[grant.token] = grant
        return grant

    def refuse(self, session: OnboardingSession) -> None:
        session.answered = True

    def finalize(self, onboarding_token: str) -> tuple[OnboardingGrant, list[Client]]:
        """Activate the integration on the approved clients: each gets its client key (kept
        if it had one). The token works once, until it expires."""
        grant = self.grants.get(onboarding_token)
        if grant is None or grant.used:
            raise Refused("The onboarding token is unknown or has already been used.")
        if self.clock.now() > grant.valid_until:
            raise Refused("The onboarding token has expired.")
        grant.used = True
        clients = [self.clients[client_id] for client_id in grant.client_ids]
        for client in clients:
            if client.client_key is None:
                client.client_key = str(uuid.uuid4())
        return grant, clients

    # -- access tokens ---------------------------------------------------------------------

    def issue_token(self, client: Client, subscription_key: str) -> AccessToken:
        lifetime = timedelta(seconds=self.faults.token_lifetime_seconds)
        token = AccessToken(
            token=secrets.token_urlsafe(48),
            client_id=client.id,
            subscription_key=subscription_key,
            expires=self.clock.now() + lifetime,
        )
        self.tokens[token.token] = token
        return token

    def valid_token(self, token: str) -> AccessToken | None:
        found = self.tokens.get(token)
        if found is None or self.clock.now() >= found.expires:
            return None
        return found

    def expire_tokens(self) -> None:
        """Every access token issued so far answers 401 from now on; new ones work."""
        self.tokens.clear()

    def retry_after(self, subscription_key: str) -> int | None:
        return self.rate_limiter.retry_after(subscription_key, self.faults, self.rate_clock())

    def set_faults(self, **changes: object) -> Faults:
        """Change fault settings (Faults field names); restarts the failure sequence and the
        rate-limit periods. ValueError on a bad setting."""
        self.faults = self.faults.updated(changes)
        self.rate_limiter = RateLimiter()
        return self.faults

    # -- ledger changes --------------------------------------------------------------------

    def post_voucher(
        self,
        client_id: int,
        lines: list[tuple[int, Decimal]],
        posting_date: date | None = None,
        description: str = "Bilag fra simulatoren",
    ) -> Voucher:
        """Post a balanced voucher now: new transactions, created and last changed now."""
        client = self.client(client_id)
        if len(lines) < 2:
            raise Refused("A voucher needs at least two lines")
        for account_no, amount in lines:
            if account_no not in client.accounts:
                raise Refused(f"No account {account_no} for client {client_id}")
            if amount != money(amount) or amount == 0:
                raise Refused(f"Amount {amount} must be non-zero with at most two decimals")
        if sum(amount for _, amount in lines) != 0:
            raise Refused("The voucher does not balance")
        stamp = self.clock.stamp()
        voucher = Voucher(
            id=str(uuid.uuid4()),
            voucher_no=max((v.voucher_no for v in client.vouchers), default=0) + 1,
            posting_date=posting_date or stamp.date(),
            description=description,
            lines=[Line(next(self.ids), no, money(amount)) for no, amount in lines],
            created=stamp,
            last_changed=stamp,
        )
        client.vouchers.append(voucher)
        return voucher

    def edit_voucher_description(self, client_id: int, voucher_no: int, text: str) -> Voucher:
        """What Go allows on a posted voucher: no accounting effect, LastChanged moves."""
        client = self.client(client_id)
        voucher = next((v for v in client.vouchers if v.voucher_no == voucher_no), None)
        if voucher is None:
            raise Refused(f"No voucher {voucher_no} for client {client_id}")
        voucher.description = text
        voucher.last_changed = self.clock.stamp()
        return voucher

    def save_account(self, client_id: int, account_no: int, name: str) -> Account:
        """Create or rename an account; its LastChangedDateTimeOffset moves."""
        client = self.client(client_id)
        if not 1000 <= account_no <= 99999:
            raise Refused("AccountNo must be between 1000 and 99999")
        account = client.accounts.get(account_no)
        if account is None:
            account = Account(next(self.ids), account_no, name, None, self.clock.stamp())
            client.accounts[account_no] = account
        else:
            account.name, account.last_changed = name, self.clock.stamp()
        return account

    def set_access(self, client_id: int, *, withdrawn: bool) -> Client:
        client = self.client(client_id)
        client.access_withdrawn = withdrawn
        return client

    # -- ledger queries --------------------------------------------------------------------

    def transactions(self, client: Client) -> Iterator[tuple[Voucher, Line]]:
        """Every account transaction, in Id order (the order Go posted them)."""
        rows = ((voucher, line) for voucher in client.vouchers for line in voucher.lines)
        return iter(sorted(rows, key=lambda row: row[1].id))

    def trial_balance(self, client: Client, day: date) -> dict[int, Decimal]:
        """Balance per account including `day`: balance accounts over all history, result
        accounts (3000–8999) from 1 January of `day`'s year."""
        year_start = date(day.year, 1, 1)
        sums: dict[int, Decimal] = {}
        for voucher in client.vouchers:
            if voucher.posting_date > day:
                continue
            for line in voucher.lines:
                if voucher.posting_date >= year_start or is_balance_account(line.account_no):
                    sums[line.account_no] = sums.get(line.account_no, ZERO) + line.amount
        return sums


def seed_demo(today: date | None = None, now: datetime | None = None) -> PowerOfficeState:
    """A PowerOffice Go partner whose user reaches 20 clients, one of which has withdrawn the
    integration's access; history from 1 January last year up to `today`. Same `today` and
    `now`, same clients, vouchers and amounts (keys and tokens are random)."""
    if now is None:
        now = datetime.combine(today, datetime.min.time(), OSLO).replace(hour=12) if today else None
    clock = Clock(fixed=now.astimezone(OSLO) if now else None)
    moment = clock.now()
    until = today or moment.date()
    state = PowerOfficeState(clock=clock)
    taken: set[str] = set()
    for index, name in enumerate(CLIENT_NAMES, start=1):
        state.clients[index] = build_client(index, name, until, moment, state.ids, taken)
    state.client_by_name(WITHDRAWN_NAME).access_withdrawn = True
    for client in state.clients.values():
        for voucher in client.vouchers:
            clock.saw(voucher.last_changed)
    return state
