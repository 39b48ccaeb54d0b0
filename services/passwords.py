"""The password rules, in one place for every way a password is set: `create-user` and the
Endre passord page (the demo user's "demo" is exempt: it exists only in demo mode).

The common-password list is Django's `django/contrib/auth/common-passwords.txt.gz`
(Django 5.2.19; Royce Williams' list of the 20,000 most common passwords, lower-cased and
de-duplicated to 19,640), BSD 3-Clause licence, copyright Django Software Foundation and
individual contributors.
"""

from __future__ import annotations

import functools
import gzip
from enum import Enum
from pathlib import Path

MIN_LENGTH = 12
# The login form reads at most this many characters; a longer password could be set here but
# never typed there, so it is refused instead.
MAX_LENGTH = 1000
COMMON_PASSWORDS = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"


class PasswordProblem(Enum):
    """Why a password is refused: in English for the command line, Norwegian for the pages."""

    BLANK = ("must not be only spaces", "Passordet kan ikke bare være mellomrom.")
    TOO_SHORT = (
        f"must be at least {MIN_LENGTH} characters",
        f"Passordet må ha minst {MIN_LENGTH} tegn.",
    )
    TOO_LONG = (
        f"must be at most {MAX_LENGTH} characters",
        f"Passordet kan ha høyst {MAX_LENGTH} tegn.",
    )
    COMMON = (
        "is one of the most common passwords; choose another",
        "Passordet er blant de vanligste passordene. Velg et annet.",
    )

    def __init__(self, english: str, norwegian: str) -> None:
        self.english = english
        self.norwegian = norwegian


def password_problem(password: str) -> PasswordProblem | None:
    """What is wrong with this password as a new one, or None when it may be used."""
    if not password.strip():
        return PasswordProblem.BLANK
    if len(password) < MIN_LENGTH:
        return PasswordProblem.TOO_SHORT
    if len(password) > MAX_LENGTH:
        return PasswordProblem.TOO_LONG
    if password.strip().lower() in _common_passwords():
        return PasswordProblem.COMMON
    return None


@functools.cache
def _common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines)
