"""A notice or error for the next page the browser loads (after a redirect): kept in the
session, said once."""

from __future__ import annotations

from litestar_htmx import HTMXRequest

FLASH_KEY = "flash"


def set_flash(request: HTMXRequest, *, notice: str | None = None, error: str | None = None) -> None:
    request.set_session({**(request.session or {}), FLASH_KEY: {"notice": notice, "error": error}})


def take_flash(request: HTMXRequest) -> dict[str, str | None]:
    """The notice or error left for this page, once."""
    session = dict(request.session or {})
    flash = session.pop(FLASH_KEY, None)
    if not isinstance(flash, dict):
        return {}
    request.set_session(session)
    return {k: v for k, v in flash.items() if k in ("notice", "error") and isinstance(v, str)}
