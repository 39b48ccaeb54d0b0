"""What every ERP connector offers, and the errors it raises.

ErpError
├── KeyRejected       the key is wrong, expired or revoked (401)
├── AccessDenied      the key may not act for that company (403)
├── RateLimited       the ERP asks us to slow down (429), after our own retries
└── ErpUnavailable    timeouts, connection failures, 5xx, after our own retries
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from models import KeyKind


class ErpError(Exception):
    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class KeyRejected(ErpError):
    pass


class AccessDenied(ErpError):
    pass


class RateLimited(ErpError):
    pass


class ErpUnavailable(ErpError):
    pass


@dataclass(frozen=True)
class RemoteClient:
    """A client company as the ERP lists it."""

    erp_id: int
    name: str
    org_number: str


@dataclass(frozen=True)
class KeyInfo:
    """What a key is: whose it is, and which companies it reaches."""

    company_id: int
    company_name: str
    kind: KeyKind
    clients: list[RemoteClient] = field(default_factory=list)


@runtime_checkable
class Connector(Protocol):
    system: str
    display_name: str

    async def inspect_key(self, key: str) -> KeyInfo:
        """Check the key against the ERP now and list the companies it reaches."""
        ...
