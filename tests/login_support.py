"""The app on a real loopback port in this event loop: concurrent requests really overlap
there (Litestar's test client runs one request at a time), and the client address is real."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from litestar.testing import AsyncTestClient

from models.office import Role
from services.db import create_engine, create_session_factory, open_session
from services.settings import Settings
from tests.conftest import PASSWORD, free_port
from tests.processes import served_here


@asynccontextmanager
async def served(
    settings: Settings, forwarded_allow_ips: str = "127.0.0.1"
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client of the served app, its CSRF cookie already set. Its requests
    come from 127.0.0.1, so by default their X-Forwarded-For is believed, as from a proxy."""
    from app import create_app

    port = free_port()
    app = create_app(settings)
    async with (
        served_here(app, port, forwarded_allow_ips=forwarded_allow_ips),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http,
    ):
        await http.get("/login")
        yield http


def csrf_field(http: httpx.AsyncClient) -> dict[str, str]:
    return {"_csrf_token": http.cookies.get("erp_csrf") or ""}


async def change_password(  # type: ignore[no-untyped-def]
    client: AsyncTestClient, current: str, new: str, repeat: str | None = None
):
    """Endre passord's form, posted."""
    return await client.post(
        "/konto/passord",
        data={
            "current": current,
            "new": new,
            "repeat": new if repeat is None else repeat,
            "_csrf_token": client.cookies.get("erp_csrf") or "",
        },
    )


async def add_user_with_role(
    database_url: str, email: str, role: Role, office: str = "Kontor A AS"
) -> None:
    """A colleague with `role` in the office (the test office unless named; created if new),
    whose password is conftest's PASSWORD."""
    from services.auth import create_user

    engine = create_engine(database_url)
    try:
        async with open_session(create_session_factory(engine)) as db:
            user = await create_user(db, email=email, password=PASSWORD, office_name=office)
            user.role = role
            await db.commit()
    finally:
        await engine.dispose()


async def set_role(database_url: str, email: str, role: Role) -> None:
    """An administrator's change of someone's role, straight in the database."""
    from sqlalchemy import text

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("update user_account set role = :role where email = :email"),
                {"role": role.value, "email": email},
            )
    finally:
        await engine.dispose()
