"""Litestar session store in our database, so every app process sees the same logins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from litestar.connection import ASGIConnection
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.stores.base import Store
from sqlmodel import col, delete, select

from models import WebSession
from services.db import SessionFactory

RENEW_SLACK = timedelta(minutes=5)


class DatabaseStore(Store):
    def __init__(self, session_factory: SessionFactory) -> None:
        self._factory = session_factory

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        data = value.encode() if isinstance(value, str) else value
        async with self._factory() as db:
            row = await db.get(WebSession, key)
            if row is None:
                row = WebSession(key=key, data=data)
                db.add(row)
            row.data = data
            row.expires_at = _expiry(expires_in)
            await db.commit()

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        async with self._factory() as db:
            row = await db.get(WebSession, key)
            if row is None:
                return None
            if row.expires_at is not None and row.expires_at <= datetime.now(UTC):
                await db.delete(row)
                await db.commit()
                return None
            if renew_for is not None and row.expires_at is not None:
                # Sliding expiry without a write per request: renew once it has drifted.
                renewed = _expiry(renew_for)
                assert renewed is not None
                if renewed - row.expires_at > RENEW_SLACK:
                    row.expires_at = renewed
                    await db.commit()
            return row.data

    async def delete(self, key: str) -> None:
        async with self._factory() as db:
            await db.exec(delete(WebSession).where(col(WebSession.key) == key))
            await db.commit()

    async def delete_all(self) -> None:
        async with self._factory() as db:
            await db.exec(delete(WebSession))
            await db.commit()

    async def delete_expired(self) -> None:
        async with self._factory() as db:
            await db.exec(delete(WebSession).where(col(WebSession.expires_at) <= datetime.now(UTC)))
            await db.commit()

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with self._factory() as db:
            expires_at = (
                await db.exec(select(WebSession.expires_at).where(col(WebSession.key) == key))
            ).first()
        if expires_at is None:
            return None
        return int((expires_at - datetime.now(UTC)).total_seconds())


def _expiry(expires_in: int | timedelta | None) -> datetime | None:
    if expires_in is None:
        return None
    seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
    return datetime.now(UTC) + timedelta(seconds=seconds)


ROTATE = "rotate_session_id"


class RotatingSessionBackend(ServerSideSessionBackend):
    """Issues a fresh session id when a handler asks (at login), so an id planted in the
    browser beforehand can never become a logged-in session (session fixation)."""

    def get_session_id(self, connection: ASGIConnection) -> str:
        state = connection.scope.setdefault("state", {})
        if state.get(ROTATE):
            if not isinstance(state[ROTATE], str):
                state[ROTATE] = self.generate_session_id()
            return state[ROTATE]
        return super().get_session_id(connection)


@dataclass
class SessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend  # type: ignore[assignment]


def rotate_session_id(connection: ASGIConnection) -> None:
    connection.scope.setdefault("state", {})[ROTATE] = True
