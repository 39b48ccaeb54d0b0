"""Litestar session store in our database, so every app process sees the same logins.

Rows are keyed by the sha256 of the session id; only the browser's cookie holds the id.
A session ends at the earlier of its idle expiry (renewed while in use) and its absolute
lifetime from login, however active it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
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
from sqlalchemy import ColumnElement, Insert, Table, update
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import WebSession
from models.base import utcnow
from services.db import SessionFactory, upsert
from services.sessions import delete_expired_sessions

RENEW_SLACK = timedelta(minutes=5)
DEFAULT_LIFETIME = timedelta(hours=12)


def row_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class DatabaseStore(Store):
    """Writes are UPDATEs by key that find no row when the session ended since it was read
    (logout in another tab, a password change, the nightly job): the request then goes on
    logged out, where an ORM flush would raise StaleDataError, a 500."""

    def __init__(
        self, session_factory: SessionFactory, max_lifetime: timedelta = DEFAULT_LIFETIME
    ) -> None:
        self._factory = session_factory
        self._max_lifetime = max_lifetime

    async def set(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        """A new session, or new data for a stored one (Litestar's contract)."""
        await self._put(key, value, expires_in, create=True)

    async def replace(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None = None
    ) -> None:
        """New data for a stored session only: one ended meanwhile stays ended."""
        await self._put(key, value, expires_in, create=False)

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        now = utcnow()
        async with self._factory() as db:
            row = (
                await db.exec(
                    select(WebSession.data, WebSession.created_at, WebSession.expires_at).where(
                        _is(key)
                    )
                )
            ).first()
            if row is None:
                return None
            data, created_at, expires_at = row
            if expires_at <= now or created_at + self._max_lifetime <= now:
                await db.exec(delete(WebSession).where(_is(key)))
                await db.commit()
                return None
            if renew_for is not None:
                # Sliding expiry without a write per request: renew once it has drifted.
                renewed = self._expiry(created_at, now, renew_for)
                if renewed - expires_at > RENEW_SLACK:
                    if not await self._write(db, key, expires_at=renewed):
                        return None
                    await db.commit()
            return data

    async def _put(
        self, key: str, value: str | bytes, expires_in: int | timedelta | None, *, create: bool
    ) -> None:
        data = value.encode() if isinstance(value, str) else value
        now = utcnow()
        values = {"data": data, "user_id": _user_id(data)}
        async with self._factory() as db:
            created_at = (await db.exec(select(WebSession.created_at).where(_is(key)))).first()
            if created_at is not None:
                expires_at = self._expiry(created_at, now, expires_in)
                await self._write(db, key, **values, expires_at=expires_at)
            elif create:
                await db.exec(  # type: ignore[call-overload]
                    upsert(db, _insert_new).values(
                        key=row_key(key),
                        **values,
                        created_at=now,
                        expires_at=self._expiry(now, now, expires_in),
                    )
                )
            await db.commit()

    async def _write(self, db: AsyncSession, key: str, **values: object) -> bool:
        """Whether the row was still there (the rows matched, never an error if none)."""
        result = await db.exec(  # type: ignore[call-overload]
            update(WebSession).where(_is(key)).values(**values)
        )
        return bool(result.rowcount)

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
        self, created_at: datetime, now: datetime, expires_in: int | timedelta | None
    ) -> datetime:
        end = created_at + self._max_lifetime
        if expires_in is None:
            return end
        seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
        return min(now + timedelta(seconds=seconds), end)


def _is(key: str) -> ColumnElement[bool]:
    return col(WebSession.key) == row_key(key)


def _insert_new(insert: Callable[[Table], Insert]) -> Insert:
    # A key taken meanwhile is no new session of ours: left as it is.
    return insert(WebSession.__table__).on_conflict_do_nothing(index_elements=["key"])  # type: ignore[arg-type, attr-defined, no-any-return]


def _user_id(data: bytes) -> int | None:
    try:
        user_id = json.loads(data).get("user_id")
    except (ValueError, AttributeError):
        return None
    return user_id if isinstance(user_id, int) else None


ROTATE = "rotate_session_id"
LOADED = "loaded_session"  # the stored bytes this request's session was read from


class RotatingSessionBackend(ServerSideSessionBackend):
    """Litestar's server-side backend, changed where it stores:

    - an empty session is not stored (Litestar stores `{}` under a new id for every request
      without a cookie: a row per anonymous request), and a cookie that named one is cleared;
    - a new session always gets a fresh id, never one the browser brought (session
      fixation), and a handler can ask for a fresh id too (at login, at a password change):
      the row of the old id is deleted;
    - an unchanged session is not written again (the store renews its expiry on reads), and
      a changed one only over its row, so a request in flight cannot bring back a session
      ended meanwhile."""

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
        if session_id != brought:
            await self.set(session_id=session_id, data=data, store=store)
        elif data != loaded:
            assert isinstance(store, DatabaseStore)
            await store.replace(session_id, data, expires_in=self.config.max_age)
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
