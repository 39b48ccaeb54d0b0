"""Whole numbers in URLs, bounded to what the database's integer columns hold.

Unbounded, a number from a URL reached the database: SQLite cannot bind one past 64 bits
(OverflowError) and PostgreSQL's integer columns stop at 2**31 - 1 (DataError), both a 500.
"""

from __future__ import annotations

from typing import Annotated

from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import QueryParameter

MAX_DB_INT = 2**31 - 1  # PostgreSQL's `integer`, the type of our id columns
MAX_BIG_INT = 2**63 - 1  # `bigint` (the change log's ids)

Offset = Annotated[
    int, QueryParameter(ge=0, le=MAX_DB_INT, description=f"Rows to skip (0–{MAX_DB_INT})")
]
# Norwegian, for the page that refuses a query parameter.
QUERY_RULES = {"offset": f"et heltall fra 0 til {MAX_DB_INT}"}


def ids_in_range(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
    """App-wide guard: every whole number in our paths is a row's id, so one no row can have
    is the same 404 as a missing one. A guard runs before the dependencies: checked as a
    dependency's parameter instead, a bad id left the database session already opened for
    the garbage collector (SQLAlchemy's "non-checked-in connection" warning)."""
    for value in connection.path_params.values():
        if isinstance(value, int) and not 1 <= value <= MAX_DB_INT:
            raise NotFoundException()


# On the controllers and routes with ids in their paths, not app-wide: Litestar copies the
# route handler for every guard call, which on the webhook receiver cost 40 % more CPU per
# callback (bench.webhooks). tests/test_out_of_range_ids.py checks that no such route lacks it.
ID_GUARDS = [ids_in_range]


def refused_query_message(exc: ValidationException) -> str:
    """The page's message for a refused query parameter, naming it."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    key = next((str(p["key"]) for p in extra if isinstance(p, dict) and p.get("key")), None)
    if key is None:
        return "Adressen inneholder en ugyldig verdi."
    if key in QUERY_RULES:
        return f"«{key}» må være {QUERY_RULES[key]}."
    return f"«{key}» har en ugyldig verdi."
