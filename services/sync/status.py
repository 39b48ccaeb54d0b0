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


# A client without access: the fix is the system's own (Connector.wording.no_api_access).
KEY_INVALID = "Nøkkelen er ugyldig eller utløpt — bruk Endre system"


def client_key_invalid(system_name: str) -> str:
    """A client whose own key (onboarded) the system no longer accepts."""
    return (
        f"{system_name} godtar ikke lenger tilkoblingen til denne klienten — trykk "
        f"Oppdater klientliste og godkjenn klienten i {system_name} på nytt"
    )


def unavailable(system_name: str) -> str:
    return f"{system_name} svarer ikke som det skal. Vi prøver igjen automatisk."


def rate_limited(system_name: str) -> str:
    return f"{system_name} ber oss sende færre forespørsler. Vi prøver igjen automatisk."


# Passing trouble (outages, rate limits) is only shown once it has lasted this many syncs.
SHOW_AFTER_FAILURES = 3
