"""Litestar session store in our database, so every app process sees the same logins.

Rows are keyed by the sha256 of the session id; only the browser's cookie holds the id.
A session ends at the earlier of its idle expiry (renewed while in use) and its absolute
lifetime from login, however active it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.stores.base import Store
from litestar.types import Empty, Message, ScopeSession
from litestar.utils.dataclass import extract_dataclass_items
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import WebSession
from models.base import utcnow
from services.db import SessionFactory

RENEW_SLACK = timedelta(minutes=5)
DEFAULT_LIFETIME = timedelta(hours=12)


def row_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class DatabaseStore(Store):
    def __init__(
        self, session_factory: SessionFactory, max_lifetime: timedelta = DEFAULT_LIFETIME
    ) -> None:
        self._factory = session_factory
        self._max_lifetime = max_lifetime

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        data = value.encode() if isinstance(value, str) else value
        now = utcnow()
        async with self._factory() as db:
            row = await db.get(WebSession, row_key(key))
            if row is None:
                row = WebSession(key=row_key(key), data=data, created_at=now, expires_at=now)
                db.add(row)
            row.data = data
            row.user_id = _user_id(data)
            row.expires_at = self._expiry(row, now, expires_in)
            await db.commit()

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        now = utcnow()
        async with self._factory() as db:
            row = await db.get(WebSession, row_key(key))
            if row is None:
                return None
            if row.expires_at <= now or row.created_at + self._max_lifetime <= now:
                await db.delete(row)
                await db.commit()
                return None
            if renew_for is not None:
                # Sliding expiry without a write per request: renew once it has drifted.
                renewed = self._expiry(row, now, renew_for)
                if renewed - row.expires_at > RENEW_SLACK:
                    row.expires_at = renewed
                    await db.commit()
            return row.data

    async def delete(self, key: str) -> None:
        async with self._factory() as db:
            await db.exec(delete(WebSession).where(col(WebSession.key) == row_key(key)))
            await db.commit()

    async def delete_all(self) -> None:
        async with self._factory() as db:
            await db.exec(delete(WebSession))
            await db.commit()

    async def delete_expired(self) -> None:
        async with self._factory() as db:
            await delete_expired_sessions(db)
            await db.commit()

    async def exists(self, key: str) -> bool:
        return await self.get(key) is not None

    async def expires_in(self, key: str) -> int | None:
        async with self._factory() as db:
            expires_at = (
                await db.exec(
                    select(WebSession.expires_at).where(col(WebSession.key) == row_key(key))
                )
            ).first()
        if expires_at is None:
            return None
        return int((expires_at - utcnow()).total_seconds())

    def _expiry(
        self, row: WebSession, now: datetime, expires_in: int | timedelta | None
    ) -> datetime:
        end = row.created_at + self._max_lifetime
        if expires_in is None:
            return end
        seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
        return min(now + timedelta(seconds=seconds), end)


def _user_id(data: bytes) -> int | None:
    try:
        user_id = json.loads(data).get("user_id")
    except (ValueError, AttributeError):
        return None
    return user_id if isinstance(user_id, int) else None


async def delete_expired_sessions(db: AsyncSession) -> None:
    """Rows past their expiry, which stores the end of the absolute lifetime too."""
    await db.exec(delete(WebSession).where(col(WebSession.expires_at) <= utcnow()))


async def end_sessions_of(db: AsyncSession, user_id: int) -> None:
    """Every session of this user, on every device (the caller commits)."""
    await db.exec(delete(WebSession).where(col(WebSession.user_id) == user_id))


ROTATE = "rotate_session_id"
LOADED = "loaded_session"  # the stored bytes this request's session was read from


class RotatingSessionBackend(ServerSideSessionBackend):
    """Litestar's server-side backend, changed where it stores:

    - an empty session is not stored (Litestar stores `{}` under a new id for every request
      without a cookie: a row per anonymous request), and a cookie that named one is cleared;
    - a new session always gets a fresh id, never one the browser brought (session
      fixation), and a handler can ask for a fresh id too (at login, at a password change):
      the row of the old id is deleted;
    - an unchanged session is not written again (the store renews its expiry on reads), so
      a request in flight cannot bring back a session ended meanwhile."""

    def get_session_id(self, connection: ASGIConnection) -> str:
        state = connection.scope.setdefault("state", {})
        if state.get(ROTATE):
            if not isinstance(state[ROTATE], str):
                state[ROTATE] = self.generate_session_id()
            return state[ROTATE]
        return super().get_session_id(connection)

    async def load_from_connection(self, connection: ASGIConnection) -> dict[str, Any]:
        if session_id := connection.cookies.get(self.config.key):
            store = self.config.get_store_from_app(connection.scope["app"])
            data = await self.get(session_id, store=store)
            if data is not None:
                connection.scope.setdefault("state", {})[LOADED] = data
                return self.deserialize_data(data)
        return {}

    async def store_in_message(
        self, scope_session: ScopeSession, message: Message, connection: ASGIConnection
    ) -> None:
        brought = connection.cookies.get(self.config.key)
        brought = brought if brought and brought != "null" else None
        if scope_session is Empty or not scope_session:
            if brought:  # ended (logout), expired or unknown: the row goes, the cookie too
                await super().store_in_message(Empty, message, connection)
            return
        state = connection.scope.setdefault("state", {})
        loaded = state.get(LOADED)
        if loaded is None:
            rotate_session_id(connection)
        store = self.config.get_store_from_app(connection.scope["app"])
        session_id = self.get_session_id(connection)
        data = self.serialize_data(scope_session, connection.scope)
        if brought and brought != session_id:
            await self.delete(brought, store=store)
        if session_id != brought or data != loaded:
            await self.set(session_id=session_id, data=data, store=store)
        cookie = dict(
            extract_dataclass_items(self.config, exclude_none=True, include=Cookie.__dict__.keys())
        )
        MutableScopeHeaders.from_message(message).add(
            "Set-Cookie",
            Cookie(value=session_id, key=self.config.key, **cookie).to_header(header=""),
        )


@dataclass
class SessionConfig(ServerSideSessionConfig):
    _backend_class = RotatingSessionBackend  # type: ignore[assignment]


def rotate_session_id(connection: ASGIConnection) -> None:
    connection.scope.setdefault("state", {})[ROTATE] = True
