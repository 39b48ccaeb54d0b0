"""Ending logins: the stored sessions of the web sessions table (web/sessions.py keeps them)."""

from __future__ import annotations

from sqlmodel import col, delete
from sqlmodel.ext.asyncio.session import AsyncSession

from models import WebSession
from models.base import utcnow


async def delete_expired_sessions(db: AsyncSession) -> None:
    """Rows past their expiry, which stores the end of the absolute lifetime too."""
    await db.exec(delete(WebSession).where(col(WebSession.expires_at) <= utcnow()))


async def end_sessions_of(db: AsyncSession, user_id: int) -> None:
    """Every session of this user, on every device (the caller commits)."""
    await db.exec(delete(WebSession).where(col(WebSession.user_id) == user_id))
