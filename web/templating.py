"""Jinja set-up: globals and filters every template may use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from jinja2.runtime import Context
from litestar.plugins.jinja import JinjaTemplateEngine
from markupsafe import Markup, escape

from models import Integration
from models.base import utcnow
from services.auth import CurrentUser
from services.balances import format_amount
from services.clients import STALE_AFTER
from services.connectors.base import ConnectKind, SystemDescription
from services.connectors.registry import Connectors
from services.demo import DEMO_SYSTEMS
from services.integrations import display_name
from services.saft import history as saft_history
from services.saft.uploads import megabytes
from services.settings import Settings
from services.sync.status import SHOW_AFTER_FAILURES
from web.guards import signed_in

OSLO = ZoneInfo("Europe/Oslo")
HTMX_FILE = "htmx-2.0.11.min.js"


def local_time(value: datetime | None) -> str:
    if value is None:
        return "aldri"
    return value.astimezone(OSLO).strftime("%d.%m.%Y kl. %H:%M")


def plural(count: int, one: str, many: str) -> str:
    """1 klient, 2 klienter: the number with the noun that agrees with it."""
    return f"{count} {one if count == 1 else many}"


def is_stale(synced_at: datetime | None) -> bool:
    """Not updated within the last 24 hours (an active client's row says so)."""
    return synced_at is None or synced_at < utcnow() - STALE_AFTER


def inline_code(text: str) -> Markup:
    """`name` in a schema's text as <code>name</code> (the rest escaped): the API schema's
    descriptions use Markdown's inline code, nothing else of it."""
    parts = escape(text).split("`")
    return Markup("".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)))


def org_number(value: str) -> str:
    """934228391 → 934 228 391, as Brønnøysund writes it."""
    return f"{value[:3]} {value[3:6]} {value[6:]}" if len(value) == 9 and value.isdigit() else value


@pass_context
def system_of(context: Context, system: str) -> SystemDescription:
    """A system's name, what it can do and its wording: from the running app's connectors
    (Litestar puts the request in every template's context)."""
    connectors: Connectors = context["request"].app.state.services.connectors
    return connectors.describe(system)


@pass_context
def integration_name(context: Context, integration: Integration) -> str:
    return display_name(integration, system_of(context, integration.system).display_name)


@pass_context
def viewer(context: Context) -> CurrentUser | None:
    """The signed-in person, in every template, fragments too: what the handler passed as
    `user`, else whom the role guard loaded for this request. None: show no controls."""
    user = context.get("user")
    if isinstance(user, CurrentUser):
        return user
    request = context.get("request")
    return signed_in(request) if request is not None else None


def configure(settings: Settings) -> Callable[[JinjaTemplateEngine], None]:
    def callback(engine: JinjaTemplateEngine) -> None:
        env = engine.engine
        env.globals.update(
            system_of=system_of,
            viewer=viewer,
            demo=settings.demo,
            # Demo buttons only for integrations whose system's simulator runs here.
            demo_systems=DEMO_SYSTEMS if settings.demo else frozenset(),
            htmx_file=HTMX_FILE,
            show_after_failures=SHOW_AFTER_FAILURES,
            is_stale=is_stale,
            # How changes reach us: webhooks when the system can reach this app, else polling.
            webhooks_on=settings.public_base_url is not None,
            poll_minutes=settings.sync.poll_minutes,
            every_minutes=(
                "hvert minutt"
                if settings.sync.poll_minutes == 1
                else f"hvert {settings.sync.poll_minutes}. minutt"
            ),
            file_connect=ConnectKind.FILE,  # a system whose data arrives as files
        )
        env.filters.update(
            local_time=local_time,
            org_number=org_number,
            plural=plural,
            inline_code=inline_code,
            integration_name=integration_name,
            import_period=saft_history.period_label,
            import_status=saft_history.status_label,
            import_progress=saft_history.progress_percent,
            import_problems=saft_history.problems_of,
            megabytes=megabytes,
            kr=format_amount,
        )

    return callback
