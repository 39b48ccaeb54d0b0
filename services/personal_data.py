"""Spotting personal data that must not be typed into free-text fields."""

import re
from datetime import date

EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
# Eleven digits, optionally written 6 + space + 5 as on Norwegian forms.
ELEVEN_DIGITS = re.compile(r"(?<!\d)(\d{6})[ ]?(\d{5})(?!\d)")
# A Norwegian phone number: eight digits, written together or grouped as Norwegians write
# them (912 34 567, 22 33 44 55), optionally after +47 or 0047. Subscriber numbers begin
# with 2-7 (landlines) or 9 and 4 (mobiles); 8 is service numbers, 0 and 1 are not used.
# Never the middle of a longer number: an org number (9 digits) or a bank account is not one.
PHONE = re.compile(
    r"(?<![\d+])(?<!\d[ .-])"
    r"(?:(?:\+|00)47[ ]?)?"
    r"(?P<number>[2-79](?:\d{7}|\d{2} \d{2} \d{3}|\d(?: \d{2}){3}))"
    r"(?![ .-]?\d)"
)

_K1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def contains_email(text: str) -> bool:
    return EMAIL.search(text) is not None


def contains_phone_number(text: str) -> bool:
    """A Norwegian phone number (8 digits); eight digits in a row that read as a date
    (31122024, 20241231) are taken for the date."""
    return any(
        " " in found["number"] or not _is_date(found["number"]) for found in PHONE.finditer(text)
    )


def contains_national_id(text: str) -> bool:
    """A Norwegian fødselsnummer or D-number: valid date part and both check digits."""
    return any(_is_national_id(a + b) for a, b in ELEVEN_DIGITS.findall(text))


def _is_national_id(digits: str) -> bool:
    d = [int(c) for c in digits]
    day, month = int(digits[0:2]), int(digits[2:4])
    if day > 40:  # D-number
        day -= 40
    if month > 40:  # H-number / synthetic test numbers
        month -= 40
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return False
    k1 = 11 - sum(w * x for w, x in zip(_K1, d[:9], strict=True)) % 11
    k1 = 0 if k1 == 11 else k1
    k2 = 11 - sum(w * x for w, x in zip(_K2, [*d[:9], k1], strict=True)) % 11
    k2 = 0 if k2 == 11 else k2
    return k1 == d[9] and k2 == d[10]


def _is_date(digits: str) -> bool:
    """DDMMYYYY or YYYYMMDD, with a year from 1900 to 2099."""
    for day, month, year in (
        (digits[0:2], digits[2:4], digits[4:8]),
        (digits[6:8], digits[4:6], digits[0:4]),
    ):
        try:
            date(int(year), int(month), int(day))
        except ValueError:
            continue
        if 1900 <= int(year) <= 2099:
            return True
    return False
