"""The world changing while the app watches: vouchers and accounts come and go, and each
change fires its webhook event to the subscriptions of that company.

A mixin of SimulatorState, kept apart so that state.py stays about the seeded world.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from simulators.tripletex import ledger
from simulators.tripletex.errors import REVISION, TripletexError, invalid, not_found
from simulators.tripletex.fields import ALL, FieldsError, parse_fields
from simulators.tripletex.model import Account, Company, EmployeeKey, Ids, Subscription, Voucher
from simulators.tripletex.render import Renderer, to_json
from simulators.tripletex.webhooks import (
    ACTIVE,
    STATUSES,
    Webhooks,
    build_delivery,
    check_subscription,
    render_value,
)

# `url` fields in callbacks of subscriptions made through state methods, not over HTTP.
DEFAULT_API_BASE = "http://localhost/v2"
Amount = Decimal | int | str


class LiveChanges:
    # Provided by SimulatorState.
    companies: dict[int, Company]
    keys: dict[str, EmployeeKey]
    ids: Ids
    subscriptions: dict[int, Subscription]
    webhooks: Webhooks
    allow_http_webhooks: bool
    today: date

    def now(self) -> datetime:
        """A change's timestamp: the wall-clock time of day on the simulator's `today`."""
        return datetime.combine(self.today, datetime.now().time()).replace(microsecond=0)

    def find_voucher(self, voucher_id: int) -> tuple[Company, Voucher]:
        # Voucher ids come in per-company ranges (Ids.for_history): the owner is the company
        # whose range starts last at or below the id, found without generating every history.
        owners = [c for c in self.companies.values() if c.voucher_ids.start <= voucher_id]
        if owners:
            company = max(owners, key=lambda c: c.voucher_ids.start)
            for voucher in company.vouchers:
                if voucher.id == voucher_id:
                    return company, voucher
        raise not_found(f"Voucher {voucher_id} does not exist.")

    def find_account(self, account_id: int) -> tuple[Company, Account]:
        for company in self.companies.values():
            account = company.account_by_id(account_id)
            if account is not None:
                return company, account
        raise not_found(f"Account {account_id} does not exist.")

    def _company(self, company_id: int) -> Company:
        company = self.companies.get(company_id)
        if company is None:
            raise not_found(f"Company {company_id} does not exist.")
        return company

    # -- changing the ledger (each change fires its webhook event) ----------------------------

    def post_voucher(
        self,
        company_id: int,
        date: date | None = None,  # shadows the type on purpose: the natural keyword
        postings: Sequence[tuple[int, Amount]] | None = None,
        description: str | None = None,
    ) -> Voucher:
        """Book a voucher: (account number, amount) postings that sum to exactly 0, or without
        postings a realistic one (a sale, a purchase, a fee). Dated `today` by default."""
        company = self._company(company_id)
        if postings is None:
            text, lines = ledger.sample(company)
        else:
            text, lines = "Manuelt bilag", ledger.plain_lines(_amounts(postings))
        day = date or self.today
        voucher = ledger.book(company, day, description or text, lines, self.now())
        self._publish(company, "voucher.create", voucher)
        return voucher

    def update_voucher(
        self,
        voucher_id: int,
        postings: Sequence[tuple[int, Amount]],
        description: str | None = None,
    ) -> Voucher:
        """Replace a voucher's postings: voucher.update, as Tripletex sends on posting changes."""
        company, voucher = self.find_voucher(voucher_id)
        lines = ledger.plain_lines(_amounts(postings))
        ledger.check_lines(company, lines)  # before any change: a refusal changes nothing
        if description:
            voucher.description = description
        ledger.rebook(company, voucher, lines, self.now())
        self._publish(company, "voucher.update", voucher)
        return voucher

    def delete_voucher(self, voucher_id: int) -> None:
        company, voucher = self.find_voucher(voucher_id)
        company.vouchers.remove(voucher)
        self._publish(company, "voucher.delete", voucher)

    def create_account(
        self, company_id: int, number: int, name: str, *, is_inactive: bool = False
    ) -> Account:
        company = self._company(company_id)
        if not 1000 <= number <= 99_999:
            raise invalid("number", "Kontonummer må være mellom 1000 og 99999.")
        if any(a.number == number for a in company.accounts):
            raise invalid("number", f"Kontonummer {number} er allerede i bruk.")
        if not name.strip():
            raise invalid("name", "Kan ikke være tom.")
        account = Account(
            id=self.ids.account.next(),
            number=number,
            name=name.strip(),
            vat_type_id=0,
            created_at=self.now(),
            is_inactive=is_inactive,
        )
        company.accounts.append(account)
        self._publish(company, "account.create", account)
        return account

    def update_account(
        self, account_id: int, *, name: str | None = None, is_inactive: bool | None = None
    ) -> Account:
        company, account = self.find_account(account_id)
        if name is not None:
            if not name.strip():
                raise invalid("name", "Kan ikke være tom.")
            account.name = name.strip()
        if is_inactive is not None:
            account.is_inactive = is_inactive
        account.version += 1
        account.updated_at = self.now()
        self._publish(company, "account.update", account)
        return account

    def delete_account(self, account_id: int) -> None:
        """Like a ledger, refuses (422) to delete an account that has postings."""
        company, account = self.find_account(account_id)
        if any(p.account_id == account_id for p in company.postings()):
            raise invalid("id", f"Konto {account.number} har posteringer og kan ikke slettes.")
        company.accounts.remove(account)
        self._publish(company, "account.delete", account)

    # -- webhook subscriptions ---------------------------------------------------------------

    def subscribe(
        self,
        company_id: int,
        event: str,
        target_url: str,
        *,
        employee_token: str = "",
        api_base: str = DEFAULT_API_BASE,
        **settings: Any,
    ) -> Subscription:
        """A new subscription (422 when invalid). `settings`: fields, auth_header_name,
        auth_header_value, hmac_shared_secret, status. Without `employee_token` it never loses
        delivery through a revoked key or client access."""
        company = self._company(company_id)
        sub = Subscription(
            id=0,
            company_id=company_id,
            key_token=employee_token,
            event=event,
            target_url=target_url,
            created_at=self.now(),
            api_base=api_base,
            **settings,
        )
        check_subscription(sub, company, self.allow_http_webhooks)
        sub.id = self.ids.subscription.next()
        self.subscriptions[sub.id] = sub
        return sub

    def subscription(self, subscription_id: int, company_id: int | None = None) -> Subscription:
        """404 also for another company's subscription: its existence is none of the caller's
        business."""
        sub = self.subscriptions.get(subscription_id)
        if sub is None or (company_id is not None and sub.company_id != company_id):
            raise not_found(f"Subscription {subscription_id} does not exist.")
        return sub

    def subscriptions_of(self, company_id: int) -> list[Subscription]:
        return sorted(
            (s for s in self.subscriptions.values() if s.company_id == company_id),
            key=lambda s: s.id,
        )

    def update_subscription(
        self,
        subscription_id: int,
        *,
        company_id: int | None = None,
        version: int | None = None,
        **changes: Any,
    ) -> Subscription:
        """Change some settings (as `subscribe`'s); 409 when `version` is not the current one."""
        sub = self.subscription(subscription_id, company_id)
        if version is not None and version != sub.version:
            message = f"Subscription {sub.id} har versjon {sub.version}, ikke {version}."
            raise TripletexError(409, REVISION, "Objektet er endret av en annen.", message)
        check_subscription(
            dataclasses.replace(sub, **changes),
            self.companies[sub.company_id],
            self.allow_http_webhooks,
        )
        for name, value in changes.items():  # in place: deliveries in flight see the status
            setattr(sub, name, value)
        if changes.get("status") == ACTIVE:
            sub.consecutive_failures = 0
        sub.version += 1
        sub.updated_at = self.now()
        return sub

    def delete_subscription(self, subscription_id: int, company_id: int | None = None) -> None:
        sub = self.subscription(subscription_id, company_id)
        del self.subscriptions[sub.id]
        sub.status = "DISABLED"  # stops its deliveries still retrying

    def disable_subscription(
        self, subscription_id: int, status: str = "DISABLED_TOO_MANY_ERRORS"
    ) -> Subscription:
        """What Tripletex does to a subscription on its own, e.g. DISABLED_RATE_LIMIT_EXCEEDED."""
        if status not in STATUSES or status == ACTIVE:
            raise ValueError(f"not a disabled status: {status}")
        sub = self.subscription(subscription_id)
        sub.status = status
        return sub

    def _publish(self, company: Company, event: str, obj: Account | Voucher) -> None:
        """Queue a callback to every active subscription of the company to that event."""
        for sub in list(self.subscriptions.values()):
            if sub.company_id != company.id or sub.event != event or sub.status != ACTIVE:
                continue
            if not self._may_receive(sub, company):
                continue
            value = None
            if not event.endswith(".delete"):
                render = Renderer(sub.api_base)
                try:
                    value = render_value(render, company, obj, parse_fields(sub.fields))
                except FieldsError:  # checked when subscribing, but the sample may have lacked it
                    value = render_value(render, company, obj, ALL)
            payload = {"subscriptionId": sub.id, "event": event, "id": obj.id, "value": value}
            self.webhooks.submit(build_delivery(sub, payload, to_json(payload)))

    def _may_receive(self, sub: Subscription, company: Company) -> bool:
        """A subscription hears nothing once its key is gone or has lost access to the company."""
        if not sub.key_token:
            return True
        key = self.keys.get(sub.key_token)
        if key is None or key.revoked:
            return False
        return company.id == key.company_id or (company.id in key.client_ids and company.api_access)


def _amounts(postings: Sequence[tuple[int, Amount]]) -> list[tuple[int, Decimal]]:
    # Through str(): Decimal(0.1) would carry the float's binary error into the ledger.
    return [(number, Decimal(str(amount))) for number, amount in postings]
