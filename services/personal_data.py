"""Spotting personal data that must not be typed into free-text fields."""

import re

EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
# Eleven digits, optionally written 6 + space + 5 as on Norwegian forms.
ELEVEN_DIGITS = re.compile(r"(?<!\d)(\d{6})[ ]?(\d{5})(?!\d)")

_K1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def contains_email(text: str) -> bool:
    return EMAIL.search(text) is not None


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
