"""The simulator's data as Tripletex DTOs: every property of the spec's schema, in its order.

Each function lists all of its model's properties (None where Tripletex would have no value)
so that the fields filter can tell an unknown field from an empty one, and a test can check
the key lists against the spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from simulators.tripletex.accounts import (
    VAT_CODES,
    account_type,
    balance_group,
    is_balance_account,
    legal_vat_types,
)
from simulators.tripletex.fields import Later, Resource
from simulators.tripletex.model import (
    Account,
    Address,
    BalanceRow,
    Company,
    Employee,
    Posting,
    Session,
    Subscription,
    Voucher,
)

CENT = Decimal("0.01")
# Amounts are Decimal all the way: encoded as JSON numbers with their exact digits.
_ENCODER = msgspec.json.Encoder(decimal_format="number")
NOK_ID = 1
NORWAY_ID = 161  # Tripletex's id for Norway in /country


def to_json(value: Any) -> bytes:
    return _ENCODER.encode(value)


def money(amount: Decimal) -> Decimal:
    """Two decimals, and never "-0.00" (a JSON number that surprises some parsers)."""
    value = amount.quantize(CENT)
    return value if value != 0 else Decimal("0.00")


def _changes(
    created_at: datetime, updated_at: datetime | None = None, employee_id: int = 0
) -> list[dict[str, Any]]:
    """CREATE and, once changed, the last UPDATE: what Tripletex promises at the least."""
    stamps = [(created_at, "CREATE")] + ([(updated_at, "UPDATE")] if updated_at else [])
    return [
        {
            "employeeId": employee_id,
            "timestamp": stamp.isoformat(timespec="milliseconds"),
            "changeType": change_type,
        }
        for stamp, change_type in stamps
    ]


@dataclass(frozen=True)
class Renderer:
    """One request's renderer. The linked objects every row repeats (currency, country, VAT
    types) are made once per request and shared: nothing changes a rendered object."""

    base_url: str  # e.g. "http://127.0.0.1:8000/tripletex/v2", no trailing slash
    _made: dict[tuple[str, int], Resource] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _once(self, model: str, object_id: int, make: Callable[[], Resource]) -> Resource:
        made = self._made.get((model, object_id))
        if made is None:
            made = self._made[model, object_id] = make()
        return made

    def url(self, path: str, object_id: int) -> str:
        return f"{self.base_url}/{path}/{object_id}"

    def ref(self, model: str, path: str, object_id: int) -> Resource:
        """A linked object the simulator does not model beyond its identity."""
        return Resource(model, {"id": object_id, "url": self.url(path, object_id)})

    def currency(self) -> Resource:
        return self._once("Currency", NOK_ID, self._new_currency)

    def _new_currency(self) -> Resource:
        return Resource(
            "Currency",
            {
                "id": NOK_ID,
                "version": 0,
                "changes": None,
                "url": self.url("currency", NOK_ID),
                "code": "NOK",
                "description": "Norske kroner",
                "factor": 1,
                "displayName": "NOK",
                "isDisabled": False,
            },
        )

    def country(self) -> Resource:
        return self._once("Country", NORWAY_ID, self._new_country)

    def _new_country(self) -> Resource:
        return Resource(
            "Country",
            {
                "id": NORWAY_ID,
                "version": 0,
                "changes": None,
                "url": self.url("country", NORWAY_ID),
                "name": "Norge",
                "displayName": "Norge",
                "isoAlpha2Code": "NO",
                "isoAlpha3Code": "NOR",
                "isoNumericCode": "578",
            },
        )

    def vat_type(self, vat_type_id: int) -> Resource:
        return self._once("VatType", vat_type_id, lambda: self._new_vat_type(vat_type_id))

    def _new_vat_type(self, vat_type_id: int) -> Resource:
        code = VAT_CODES[vat_type_id]
        return Resource(
            "VatType",
            {
                "id": code.id,
                "version": 0,
                "changes": None,
                "url": self.url("ledger/vatType", code.id),
                "name": code.name,
                "number": code.number,
                "displayName": f"{code.number} {code.name}",
                "percentage": code.percentage,
                "deductionPercentage": Decimal(100),
                "parentType": None,
            },
        )

    def address(self, address: Address) -> Resource:
        text = f"{address.address_line1}, {address.postal_code} {address.city}"
        return Resource(
            "Address",
            {
                "id": address.id,
                "version": 0,
                "changes": None,
                "url": self.url("address", address.id),
                "addressLine1": address.address_line1,
                "addressLine2": "",
                "postalCode": address.postal_code,
                "city": address.city,
                "country": self.country(),
                "displayName": text,
                "addressAsString": text,
                "displayNameInklMatrikkel": text,
                "knr": None,
                "gnr": None,
                "bnr": None,
                "fnr": None,
                "snr": None,
                "unitNumber": "",
            },
        )

    def company(self, company: Company) -> Resource:
        return Resource(
            "Company",
            {
                "id": company.id,
                "version": company.version,
                "changes": _changes(company.created_at),
                "url": self.url("company", company.id),
                "name": company.name,
                "displayName": company.name,
                "startDate": company.start_date.isoformat(),
                "endDate": None,
                "organizationNumber": company.organization_number,
                "email": company.email,
                "phoneNumber": company.phone_number,
                "phoneNumberMobile": "",
                "faxNumber": "",
                "address": self.address(company.address),
                "type": company.type,
                "currency": self.currency(),
                "accountantOrSimilar": company.is_accounting_office,
                "companyMigration": "NONE",
                "invoiceShowDeliveryDate": False,
            },
        )

    def client(self, company: Company) -> Resource:
        return Resource(
            "Client",
            {**self.company(company), "customerCompanyId": company.customer_company_id},
        )

    def employee(self, employee: Employee, created_at: datetime) -> Resource:
        return Resource(
            "Employee",
            {
                "id": employee.id,
                "version": employee.version,
                "changes": _changes(created_at),
                "url": self.url("employee", employee.id),
                "firstName": employee.first_name,
                "lastName": employee.last_name,
                "displayName": f"{employee.first_name} {employee.last_name}",
                "employeeNumber": employee.employee_number,
                "dateOfBirth": None,
                "email": employee.email,
                "phoneNumberMobileCountry": self.country(),
                "phoneNumberMobile": "",
                "phoneNumberHome": "",
                "phoneNumberWork": "",
                "nationalIdentityNumber": None,  # personal data: never exposed
                "dnumber": None,
                "internationalId": None,
                "bankAccountNumber": "",
                "iban": "",
                "bic": "",
                "creditorBankCountryId": None,
                "usesAbroadPayment": False,
                "userType": "EXTENDED",
                "allowInformationRegistration": True,
                "isContact": False,
                "isProxy": employee.is_proxy,
                "comments": "",
                "address": None,
                "department": None,
                "employments": [],
                "holidayAllowanceEarned": None,
                "employeeCategory": None,
                "isAuthProjectOverviewURL": False,
                "pictureId": None,
                "companyId": employee.company_id,
            },
        )

    def logged_in_user(
        self, employee: Employee, actual: Employee, company: Company
    ) -> dict[str, Any]:
        return {
            "employeeId": employee.id,
            "actualEmployeeId": actual.id,
            "employee": self.employee(employee, company.created_at),
            "companyId": company.id,
            "company": self.company(company),
            "language": "no",
            "loggedInWithConnect": False,
            "employeeIsProxy": employee.is_proxy,
        }

    def session_token(self, session: Session, employee_token_id: int) -> Resource:
        return Resource(
            "SessionToken",
            {
                "id": session.id,
                "version": 0,
                "changes": None,
                "url": self.url("token/session", session.id),
                "consumerToken": self.ref(
                    "ConsumerToken", "token/consumer", session.consumer_token_id
                ),
                "employeeToken": self.ref("EmployeeToken", "token/employee", employee_token_id),
                "expirationDate": session.expiration_date.isoformat(),
                "token": session.token,
                "encryptionKey": None,
            },
        )

    def account(self, account: Account, has_postings: bool | Later) -> Resource:
        number = account.number
        return Resource(
            "Account",
            {
                "id": account.id,
                "version": account.version,
                "changes": Later(lambda: _changes(account.created_at, account.updated_at)),
                "url": self.url("ledger/account", account.id),
                "number": number,
                "numberPretty": str(number),
                "name": account.name,
                "description": "",
                "type": account_type(number),
                "legalVatTypes": Later(lambda: [self.vat_type(v) for v in legal_vat_types(number)]),
                "ledgerType": "GENERAL",
                "balanceGroup": balance_group(number),
                "vatType": Later(lambda: self.vat_type(account.vat_type_id)),
                "vatLocked": False,
                "currency": Later(self.currency),
                "isCloseable": account.is_closeable,
                "isApplicableForSupplierInvoice": not is_balance_account(number),
                "requireReconciliation": account.require_reconciliation,
                "isInactive": account.is_inactive,
                "isBankAccount": account.is_bank_account,
                "isInvoiceAccount": False,
                "bankAccountNumber": account.bank_account_number,
                "bankAccountCountry": Later(self.country) if account.is_bank_account else None,
                "bankName": "",
                "bankAccountIBAN": "",
                "bankAccountSWIFT": "",
                # NS 4102 numbers are SAF-T standard accounts and RF-1167 grouping codes alike.
                "saftCode": str(number),
                "groupingCode": str(number),
                "displayName": f"{number} {account.name}",
                "requiresDepartment": False,
                "requiresProject": False,
                "invoicingDepartment": None,
                "isPostingsExist": has_postings,
                "quantityType1": None,
                "quantityType2": None,
                "department": None,
            },
        )

    def balance_row(self, row: BalanceRow, has_postings: bool | Later) -> dict[str, Any]:
        return {
            "account": self.account(row.account, has_postings),
            "balanceIn": money(row.balance_in),
            "balanceChange": money(row.balance_change),
            "balanceOut": money(row.balance_out),
            "startDate": row.start_date.isoformat(),
            "endDate": row.end_date.isoformat(),
        }

    def voucher(self, voucher: Voucher, accounts: Mapping[int, Account] | None = None) -> Resource:
        """With `accounts` (id → Account), postings are whole objects, for `postings(...)`
        fields; without, bare refs — which is also what a posting's own voucher shows, so the
        two never embed each other endlessly."""
        label = f"{voucher.number}-{voucher.year}"
        if accounts is None:
            postings = [self.ref("Posting", "ledger/posting", p.id) for p in voucher.postings]
        else:
            postings = [self.posting(p, voucher, accounts[p.account_id]) for p in voucher.postings]
        return Resource(
            "Voucher",
            {
                "id": voucher.id,
                "version": voucher.version,
                "changes": _changes(voucher.created_at, voucher.updated_at),
                "url": self.url("ledger/voucher", voucher.id),
                "date": voucher.date.isoformat(),
                "number": voucher.number,
                "tempNumber": 0,
                "year": voucher.year,
                "description": voucher.description,
                "voucherType": None,
                "reverseVoucher": None,
                "postings": postings,
                "document": None,
                "attachment": None,
                "externalVoucherNumber": "",
                "ediDocument": None,
                "supplierVoucherType": None,
                "wasAutoMatched": False,
                "vendorInvoiceNumber": "",
                "displayName": f"{label} {voucher.description}",
                "numberAsString": label,
            },
        )

    def posting(self, posting: Posting, voucher: Voucher, account: Account) -> Resource:
        return Resource(
            "Posting",
            {
                "id": posting.id,
                "version": posting.version,
                "changes": _changes(voucher.created_at, voucher.updated_at),
                "url": self.url("ledger/posting", posting.id),
                "voucher": Later(lambda: self.voucher(voucher)),
                "date": posting.date.isoformat(),
                "description": posting.description,
                "account": Later(lambda: self.account(account, True)),
                "amortizationAccount": None,
                "amortizationStartDate": None,
                "amortizationEndDate": None,
                "customer": None,
                "supplier": None,
                "employee": None,
                "project": None,
                "product": None,
                "department": None,
                "vatType": self.vat_type(posting.vat_type_id),
                "amount": money(posting.amount),
                "amountCurrency": money(posting.amount),
                "amountGross": money(posting.amount_gross),
                "amountGrossCurrency": money(posting.amount_gross),
                "currency": self.currency(),
                "closeGroup": None,
                "invoiceNumber": "",
                "termOfPayment": None,
                "row": posting.row,
                "type": None,
                "externalRef": "",
                "systemGenerated": posting.system_generated,
                "taxTransactionType": None,
                "taxTransactionTypeId": None,
                "matched": False,
                "quantityAmount1": None,
                "quantityType1": None,
                "quantityAmount2": None,
                "quantityType2": None,
                "isVatReadonly": posting.system_generated,
                "isAmountVatClosed": False,
                "postingRuleId": None,
            },
        )

    def subscription(self, sub: Subscription) -> Resource:
        return Resource(
            "Subscription",
            {
                "id": sub.id,
                "version": sub.version,
                "changes": _changes(sub.created_at, sub.updated_at),
                "url": self.url("event/subscription", sub.id),
                "event": sub.event,
                "targetUrl": sub.target_url,
                "fields": sub.fields,
                "status": sub.status,
                "authHeaderName": sub.auth_header_name,
                "authHeaderValue": None,  # write-only: never shown again
                "hmacSharedSecret": None,  # write-only
            },
        )
