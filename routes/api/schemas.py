"""The API's response bodies, as they appear in the OpenAPI schema.

Amounts are JSON strings with exactly two decimals ("-1250.50"), never numbers: a consumer
parsing them as floats would lose øre.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

Amount = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^-?[0-9]+\.[0-9]{2}$",
        description="Kroner with two decimals, as a string",
        examples=["-1250.50"],
    ),
]
Cursor = Annotated[str, msgspec.Meta(description="Opaque; pass back as `cursor`")]
HealthStatus = Literal["ok", "syncing", "never", "inactive", "error", "no_access", "key_error"]
ChangeKindName = Literal[
    "balances", "accounts", "client_activated", "client_deactivated", "client_published",
    "sync_failed",
]  # fmt: skip


class Problem(msgspec.Struct):
    """Every error: the HTTP status, a stable code, a message, and the input field at fault."""

    status: int
    error: str
    message: str
    field: str | None = None


class Health(msgspec.Struct):
    status: HealthStatus
    message: str | None  # what is wrong and how to fix it (Norwegian, as the UI says it)
    failures: int  # failed syncs in a row


class ClientOut(msgspec.Struct):
    id: int
    name: str
    org_number: str
    system: str
    integration_id: int
    active: bool
    last_synced_at: datetime | None
    health: Health


class ClientList(msgspec.Struct):
    data: list[ClientOut]
    next_cursor: Cursor | None


class AccountOut(msgspec.Struct):
    number: int
    name: str
    type: str
    is_inactive: bool
    is_bank_account: bool
    vat_code: str | None
    saft_code: str | None
    grouping_code: str | None
    grouping_category: str | None  # SAF-T 1.30's GroupingCategory (files only)
    removed_at: datetime | None  # set when the ERP no longer has it (SLETT KONTOER off)


class AccountList(msgspec.Struct):
    data: list[AccountOut]
    next_cursor: Cursor | None


class BalanceLineOut(msgspec.Struct):
    account_number: int
    account_name: str | None
    opening: Amount
    movement: Amount
    closing: Amount


class Totals(msgspec.Struct):
    opening: Amount
    movement: Amount
    closing: Amount


class BalanceReport(msgspec.Struct):
    """`opening` is the balance at the start of `from_month` (1 January for `as_of`),
    `movement` the postings from then through `to_month`, `closing` the balance after."""

    client_id: int
    year: int
    from_month: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}$")]
    to_month: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-[0-9]{2}$")]
    as_of: date | None
    lines: list[BalanceLineOut]
    totals: Totals


class ChangeOut(msgspec.Struct):
    """Something of a client changed. `balances` names a month, or only a year when every
    month of it changed (new opening balances)."""

    id: int
    client_id: int
    kind: ChangeKindName
    year: int | None
    month: int | None
    changed_at: datetime


class ChangeList(msgspec.Struct):
    data: list[ChangeOut]
    next_cursor: Cursor  # always: poll again with it
    has_more: bool


SaftImportStatus = Literal["running", "imported", "unchanged", "refused", "failed"]
FindingKindName = Literal[
    "openings_unbalanced", "closing_mismatch", "unbalanced_transaction", "unknown_account"
]  # fmt: skip


class SaftFindingOut(msgspec.Struct):
    """Where the file disagrees with itself; the figures are the file's own. Which fields are
    set depends on `kind`: an account's figures (closing_mismatch, unknown_account), a
    transaction's (unbalanced_transaction), or the openings' sum (openings_unbalanced)."""

    kind: FindingKindName
    message: str  # Norwegian, as the client page shows it
    account: str | None
    transaction_id: str | None
    journal_id: str | None
    period_year: int | None
    period: int | None
    line: int | None  # the line in the file
    line_count: int | None
    opening: Amount | None
    movements: Amount | None
    computed_closing: Amount | None  # opening + movements
    file_closing: Amount | None  # the file's own closing balance
    debit: Amount | None
    credit: Amount | None
    total: Amount | None


class SaftImportOut(msgspec.Struct):
    """One SAF-T file received and what came of it."""

    id: int
    status: SaftImportStatus
    integration_id: int
    client_id: int | None  # the file's company (set once imported)
    file_name: str
    size_bytes: int
    audit_file_version: str
    company_name: str
    org_number: str
    first_month: str | None  # "2024-01": the first month the file covers
    last_month: str | None
    accounts: int
    transactions: int
    lines: int
    started_at: datetime
    finished_at: datetime | None
    problems: list[str]  # why a file was refused or failed (Norwegian)
    warnings: list[SaftFindingOut]
    warnings_omitted: int  # unbalanced transactions beyond those listed
