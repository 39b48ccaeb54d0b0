"""Changing a company's ledger: booking, rebooking and deleting vouchers; pure data work.

Balances are never stored (see model.py), so a booked voucher moves the balance sheet by
exactly its postings. Invalid input raises Tripletex's 422 (`invalid`), which the control
API passes on as is.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from simulators.tripletex.accounts import VAT_CODES
from simulators.tripletex.errors import invalid
from simulators.tripletex.generate import _CUSTOMERS, _SUPPLIERS, CENT, Line, _percent
from simulators.tripletex.model import Company, Posting, Voucher


def plain_lines(postings: Iterable[tuple[int, Decimal]]) -> list[Line]:
    """(account number, amount) pairs as ledger lines without VAT."""
    return [(number, amount, 0, amount, False) for number, amount in postings]


def postings_from_json(raw: Any) -> list[tuple[int, Decimal]]:
    """`[{"accountNumber": 1920, "amount": "100.00"}, ...]` from the control API."""
    if not isinstance(raw, list):
        raise invalid("postings", "Må være en liste.")
    pairs = []
    for item in raw:
        if not isinstance(item, dict) or "accountNumber" not in item or "amount" not in item:
            raise invalid("postings", "Hver postering trenger accountNumber og amount.")
        number, amount = item["accountNumber"], item["amount"]
        if isinstance(number, bool) or not isinstance(number, int):
            raise invalid("postings.accountNumber", f"Ugyldig kontonummer: {number!r}.")
        try:
            # str() first: a JSON number arrives as float, and Decimal(float) is not exact.
            pairs.append((number, Decimal(str(amount))))
        except InvalidOperation:
            raise invalid("postings.amount", f"Ugyldig beløp: {amount!r}.") from None
    return pairs


def check_lines(company: Company, lines: Sequence[Line]) -> None:
    """A voucher must balance to exactly 0.00, on existing, active accounts, in øre."""
    if len(lines) < 2:
        raise invalid("postings", "Et bilag må ha minst to posteringer.")
    accounts = {a.number: a for a in company.accounts}
    for number, amount, *_ in lines:
        account = accounts.get(number)
        if account is None:
            raise invalid("postings.account", f"Konto {number} finnes ikke.")
        if account.is_inactive:
            raise invalid("postings.account", f"Konto {number} er inaktiv.")
        if not amount.is_finite() or amount != amount.quantize(CENT):
            raise invalid("postings.amount", f"Beløpet {amount} har mer enn to desimaler.")
    difference = sum((line[1] for line in lines), Decimal(0))
    if difference != 0:
        raise invalid("postings", f"Bilaget balanserer ikke: differanse {difference}.")


def book(
    company: Company, day: date, description: str, lines: Sequence[Line], now: datetime
) -> Voucher:
    """A new voucher, numbered after the last one of its year as Tripletex numbers them."""
    check_lines(company, lines)
    vouchers = company.vouchers  # generates the history first, so its ids come first too
    number = 1 + max((v.number for v in vouchers if v.year == day.year), default=0)
    voucher = Voucher(
        id=company.voucher_ids.next(),
        number=number,
        year=day.year,
        date=day,
        description=description,
        created_at=now,
    )
    voucher.postings = _postings(company, voucher, lines)
    vouchers.append(voucher)
    return voucher


def rebook(company: Company, voucher: Voucher, lines: Sequence[Line], now: datetime) -> None:
    """Replace the postings (new ids, as Tripletex regenerates them) and bump the version."""
    check_lines(company, lines)
    voucher.postings = _postings(company, voucher, lines)
    voucher.version += 1
    voucher.updated_at = now


def _postings(company: Company, voucher: Voucher, lines: Sequence[Line]) -> list[Posting]:
    ids = {a.number: a.id for a in company.accounts}
    return [
        Posting(
            id=company.posting_ids.next(),
            voucher_id=voucher.id,
            date=voucher.date,
            description=voucher.description,
            account_id=ids[number],
            amount=amount,
            amount_gross=gross,
            vat_type_id=vat_type,
            row=row,
            system_generated=generated,
        )
        for row, (number, amount, vat_type, gross, generated) in enumerate(lines, start=1)
    ]


def sample(company: Company) -> tuple[str, list[Line]]:
    """A realistic balanced voucher for "something happened today": the same for the same
    company and voucher count, so runs repeat."""
    rng = random.Random(f"tripletex-sim:live:{company.id}:{len(company.vouchers)}")
    net = (Decimal(rng.randint(20_000, 2_000_000)) / 100).quantize(CENT)
    vat = _percent(net, VAT_CODES[3].percentage)
    kind = rng.choice(("sale", "sale", "purchase", "fee"))
    if kind == "sale":
        return f"Kontantsalg {rng.choice(_CUSTOMERS)}", [
            (1920, net + vat, 0, net + vat, False),
            (3000, -net, 3, -(net + vat), False),
            (2700, -vat, 3, -vat, True),
        ]
    if kind == "purchase":
        return f"Kortkjøp {rng.choice(_SUPPLIERS)}", [
            (6800, net, 1, net + vat, False),
            (2710, vat, 1, vat, True),
            (1920, -(net + vat), 0, -(net + vat), False),
        ]
    fee = (net / 100).quantize(CENT)
    return "Bankgebyr", [(7770, fee, 0, fee, False), (1920, -fee, 0, -fee, False)]
