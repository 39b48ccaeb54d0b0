"""The simulator's data as PowerOffice Go v2 DTOs (the spec's property names and casing).

Amounts stay Decimal up to the wire: encoded as JSON numbers with exactly two decimals, never
through float. Timestamps are DateTimeOffsets with Oslo's offset.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from simulators.poweroffice.chart import account_type
from simulators.poweroffice.model import Account, Client, Line, Voucher

CENT = Decimal("0.01")
_ENCODER = msgspec.json.Encoder(decimal_format="number")
# What an activated integration may do on a client with the usual Go subscriptions.
PRIVILEGES = ("GeneralLedgerAccount", "TrialBalance", "AccountTransaction")
SUBSCRIPTIONS = ("Accounting",)


def to_json(value: Any) -> bytes:
    return _ENCODER.encode(value)


def amount(value: Decimal) -> Decimal:
    """Two decimals, and never -0.00."""
    value = value.quantize(CENT)
    return value if value != 0 else Decimal("0.00")


def timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def account_dto(account: Account) -> dict[str, Any]:
    return {
        "Id": account.id,
        "AccountNo": account.account_no,
        "Name": account.name,
        "GeneralLedgerAccountType": account_type(account.account_no),
        "IsActive": account.is_active,
        "CurrencyCode": "NOK",
        "VatCode": account.vat_code,
        "IsDepartmentRequired": False,
        "IsProjectRequired": False,
        "IsVatCodeLocked": False,
        "LastChangedDateTimeOffset": timestamp(account.last_changed),
    }


def transaction_dto(client: Client, voucher: Voucher, line: Line) -> dict[str, Any]:
    return {
        "Id": line.id,
        "AccountId": client.accounts[line.account_no].id,
        "AccountNo": line.account_no,
        "Amount": amount(line.amount),
        "CurrencyAmount": amount(line.amount),
        "CurrencyCode": "NOK",
        "Description": voucher.description,
        "PostingDate": voucher.posting_date.isoformat(),
        "VoucherDate": voucher.posting_date.isoformat(),
        "VoucherId": voucher.id,
        "VoucherNo": voucher.voucher_no,
        "VoucherType": voucher.voucher_type,
        "VoucherDescription": voucher.description,
        "IsReversed": False,
        "CreatedDateTimeOffset": timestamp(voucher.created),
        "LastChangedDateTimeOffset": timestamp(voucher.last_changed),
    }


def trial_balance_dto(account: Account, balance: Decimal) -> dict[str, Any]:
    return {
        "AccountId": account.id,
        "AccountNo": account.account_no,
        "AccountName": account.name,
        "Balance": amount(balance),
    }


def integration_dto(client: Client) -> dict[str, Any]:
    """A withdrawn integration keeps no valid privileges: the answer to "why 403?"."""
    valid = [] if client.access_withdrawn else list(PRIVILEGES)
    return {
        "ClientId": client.client_id,
        "ClientName": client.name,
        "ActiveClientSubscriptions": list(SUBSCRIPTIONS),
        "ValidPrivileges": valid,
        "InvalidPrivileges": list(PRIVILEGES) if client.access_withdrawn else [],
    }
