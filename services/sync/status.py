"""A client's sync status, and what the accountant is told about it (Norwegian)."""

from enum import StrEnum


class SyncStatus(StrEnum):
    NEVER = "never"
    QUEUED = "queued"
    SYNCING = "syncing"
    OK = "ok"
    ERROR = "error"
    NO_ACCESS = "no_access"
    KEY_ERROR = "key_error"


NO_API_ACCESS = (
    "Klienten har ikke gitt regnskapskontoret API-tilgang. I Tripletex: gå inn på klienten "
    "→ Regnskap → Innstillinger → Regnskapsførers tilgang → sett hake for API-tilgang."
)
KEY_INVALID = "Nøkkelen er ugyldig eller utløpt — bruk Endre system"
UNAVAILABLE = "Tripletex svarer ikke som det skal. Vi prøver igjen automatisk."
RATE_LIMITED = "Tripletex ber oss sende færre forespørsler. Vi prøver igjen automatisk."

# Passing trouble (outages, rate limits) is only shown once it has lasted this many syncs.
SHOW_AFTER_FAILURES = 3
