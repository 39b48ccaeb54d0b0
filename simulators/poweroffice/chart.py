"""The demo chart of accounts (NS 4102 numbers), account types, and organisation numbers."""

from __future__ import annotations

import random

# (AccountNo, Name, VatCode or None): a small, real-looking NS 4102 chart every client gets.
CHART: tuple[tuple[int, str, str | None], ...] = (
    (1500, "Kundefordringer", None),
    (1920, "Bankinnskudd", None),
    (2000, "Aksjekapital", None),
    (2050, "Annen egenkapital", None),
    (2400, "Leverandørgjeld", None),
    (2700, "Utgående merverdiavgift, høy sats", None),
    (2710, "Inngående merverdiavgift, høy sats", None),
    (2740, "Oppgjørskonto merverdiavgift", None),
    (3000, "Salgsinntekt, avgiftspliktig", "3"),
    (3100, "Salgsinntekt, avgiftsfri", "6"),
    (4000, "Innkjøp av råvarer og halvfabrikater", "1"),
    (5000, "Lønn til ansatte", None),
    (6300, "Leie lokale", "1"),
    (6800, "Kontorrekvisita", "1"),
    (7700, "Styre- og bedriftsforsamlingsmøter", None),
    (8050, "Annen renteinntekt", None),
    (8150, "Annen rentekostnad", None),
    (8960, "Overføringer annen egenkapital", None),
)  # fmt: skip

ORG_NUMBER_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


def is_balance_account(account_no: int) -> bool:
    """Classes 1 and 2 (assets, equity, liabilities) carry over year ends; 3–8 restart at zero
    on 1 January."""
    return account_no < 3000


def account_type(account_no: int) -> str:
    """GeneralLedgerAccountType for an NS 4102 number."""
    if account_no < 2000:
        return "Asset"
    if account_no < 2100:
        return "Equity"
    if account_no < 3000:
        return "Liability"
    if account_no < 4000 or account_no in range(8000, 8100):
        return "Income"
    return "Expense"


def _check_digit(digits: list[int]) -> int | None:
    remainder = 11 - sum(d * w for d, w in zip(digits, ORG_NUMBER_WEIGHTS, strict=True)) % 11
    if remainder == 11:
        return 0
    return None if remainder == 10 else remainder


def is_valid_org_number(value: str) -> bool:
    """Nine digits whose last one is the MOD11 check digit of the first eight."""
    if len(value) != 9 or not value.isdigit():
        return False
    digits = [int(c) for c in value]
    return _check_digit(digits[:8]) == digits[8]


def org_number(rng: random.Random, taken: set[str]) -> str:
    """A new valid organisation number (starting 8 or 9, as Brønnøysund's do)."""
    while True:
        digits = [rng.choice((8, 9))] + [rng.randint(0, 9) for _ in range(7)]
        check = _check_digit(digits)
        value = "".join(map(str, [*digits, check]))
        if check is not None and value not in taken:
            taken.add(value)
            return value
