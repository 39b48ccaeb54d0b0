"""Readiness checks: can this instance serve requests right now?

Each check answers "ok" or a short reason. Reasons name no host, user or password: /readyz is
unauthenticated, so details go to the log instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Protocol

import anyio
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from services.db import SessionFactory, alembic_config
from services.settings import Settings
from services.sync.scheduler import SyncRunner

log = logging.getLogger(__name__)


class Checked(Protocol):
    """What the checks look at: the app's shared services."""

    @property
    def settings(self) -> Settings: ...
    @property
    def session_factory(self) -> SessionFactory: ...
    @property
    def sync_runner(self) -> SyncRunner | None: ...


OK = "ok"
DISABLED = "disabled"  # switched off by configuration: not a reason to refuse traffic
PASSING = {OK, DISABLED}
VERSION_TABLE = "alembic_version"  # alembic's default; migrations/env.py keeps it
CHECK_TIMEOUT = 2.0  # seconds; a probe that hangs is as bad as a failing one


async def check_database(ctx: Checked) -> str:
    async with ctx.session_factory() as session:
        connection = await session.connection()
        await connection.execute(text("SELECT 1"))
    return OK


async def check_migrations(ctx: Checked) -> str:
    async with ctx.session_factory() as session:
        connection = await session.connection()
        current = frozenset(await connection.run_sync(_current_heads))
    heads, known = _script_revisions()
    if current == heads:
        return OK
    at, head = ",".join(sorted(current)) or "none", ",".join(sorted(heads))
    if current <= known:
        return f"behind: at {at}, head {head}"
    # A revision this release does not know: the database was migrated by a newer release.
    return f"unknown revision: at {at}, head {head}"


def _current_heads(connection: Connection) -> tuple[str, ...]:
    # Read directly: alembic's MigrationContext logs two INFO lines per call, i.e. per probe.
    if not inspect(connection).has_table(VERSION_TABLE):
        return ()
    return tuple(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())


@cache
def _script_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """The heads of migrations/ and every revision in it (read once: they do not change
    while we run; the database URL plays no part in reading them)."""
    script = ScriptDirectory.from_config(alembic_config(""))
    return frozenset(script.get_heads()), frozenset(r.revision for r in script.walk_revisions())


async def check_scheduler(ctx: Checked) -> str:
    if not ctx.settings.sync.enabled:
        return DISABLED
    runner = ctx.sync_runner
    if runner is None or runner.scheduler is None or not runner.scheduler.running:
        return "not running"
    return OK


Check = Callable[[Checked], Awaitable[str]]
CHECKS: list[tuple[str, Check]] = [
    ("database", check_database),
    ("migrations", check_migrations),
    ("scheduler", check_scheduler),
]


async def run_checks(ctx: Checked) -> dict[str, str]:
    """Every check's answer by name; a check that raises or hangs fails, it never escapes."""
    results: dict[str, str] = {}
    for name, check in CHECKS:
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                results[name] = await check(ctx)
        except TimeoutError:
            log.warning("readiness check %s timed out after %ss", name, CHECK_TIMEOUT)
            results[name] = "timeout"
        except Exception as exc:
            # No traceback: a probe every few seconds would bury the log in them.
            log.warning("readiness check %s failed: %s: %s", name, type(exc).__name__, exc)
            results[name] = f"error: {type(exc).__name__}"
    return results
