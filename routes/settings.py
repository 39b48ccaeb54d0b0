"""Innstillinger: API-nøkler (tokens for the downstream products) and Varsler (webhook and
e-mail alerts)."""

from __future__ import annotations

from functools import partial

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Response, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import NotificationEndpoint
from routes.auth import client_address
from routes.forms import Form, field
from routes.integrations import redirect
from routes.params import ID_GUARDS
from services import api_tokens, audit, notifications
from services.auth import CurrentUser
from services.crypto import KeyVault
from services.notifications.endpoints import retry_delivery
from services.outbound_guard import OutboundPolicy
from services.settings import Settings
from web.dependencies import Services, wants_fragment
from web.guards import ADMINISTRATOR

NO_STORE = {"Cache-Control": "no-store"}  # pages that show a secret
SMTP_MISSING = (
    "E-post er ikke satt opp på denne serveren, så ingen e-postvarsler sendes. "
    "Driftsansvarlig må sette SMTP_HOST og SMTP_FROM (se README)."
)


class SettingsController(Controller):
    path = "/innstillinger"
    guards = ID_GUARDS
    opt = ADMINISTRATOR
    include_in_schema = False

    @get("/")
    async def index(self) -> Redirect:
        return Redirect("/innstillinger/api-nokler", status_code=303)

    # -- API-nøkler -------------------------------------------------------------------

    @get("/api-nokler")
    async def tokens(
        self, db: NamedDependency[AsyncSession], user: NamedDependency[CurrentUser]
    ) -> Template:
        return await _tokens_page(db, user)

    @post("/api-nokler", status_code=200)
    async def create_token(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        data: Form,
    ) -> Template:
        """Ny API-nøkkel: the token is in this response and never again."""
        name = field(data, "name")
        reads_audit = field(data, "reads_audit") in ("on", "true")  # Kan lese revisjonsloggen
        try:
            actor = audit.actor_of(user, client_address(request))
            token, raw = await api_tokens.create_token(db, actor, name, reads_audit=reads_audit)
        except api_tokens.TokenInputError as exc:
            values = {"name": name, "reads_audit": reads_audit}
            return await _tokens_page(
                db, user, request=request, values=values, errors={exc.field: exc.message}
            )
        return await _tokens_page(db, user, request=request, created=(token, raw))

    @post("/api-nokler/{token_id:int}/trekk-tilbake", status_code=200)
    async def revoke_token(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        token_id: FromPath[int],
    ) -> Response:
        actor = audit.actor_of(user, client_address(request))
        if await api_tokens.revoke_token(db, actor, token_id) is None:
            raise NotFoundException()
        if not wants_fragment(request):
            return redirect(request, "/innstillinger/api-nokler")
        return await _tokens_page(db, user, request=request)

    # -- Varsler (webhook) ---------------------------------------------------------------

    @get("/varsler")
    async def notifications_page(
        self,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        vault: NamedDependency[KeyVault],
        settings: NamedDependency[Settings],
    ) -> Template:
        return await _notifications_page(db, user, vault, settings)

    @post("/varsler", status_code=200)
    async def save_endpoint(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        vault: NamedDependency[KeyVault],
        settings: NamedDependency[Settings],
        data: Form,
    ) -> Response:
        url = field(data, "url")
        enabled = field(data, "enabled") in ("on", "true")
        try:
            _, secret = await notifications.save_endpoint(
                db,
                vault,
                audit.actor_of(user, client_address(request)),
                url,
                enabled=enabled,
                policy=OutboundPolicy.from_settings(settings),
            )
        except notifications.NotificationInputError as exc:
            return await _notifications_page(
                db,
                user,
                vault,
                settings,
                request=request,
                values={"url": url, "enabled": enabled},
                errors={exc.field: exc.message},
                status_code=422,
            )
        notice = "Varslene sendes hit fra nå av." if secret else "Endringene er lagret."
        return await _notifications_page(
            db, user, vault, settings, request=request, new_secret=secret, notice=notice
        )

    @post("/varsler/ny-hemmelighet", status_code=200)
    async def rotate_secret(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        vault: NamedDependency[KeyVault],
        settings: NamedDependency[Settings],
    ) -> Response:
        endpoint = await _owned_endpoint(db, user)
        actor = audit.actor_of(user, client_address(request))
        secret = await notifications.rotate_secret(db, vault, endpoint, actor)
        return await _notifications_page(
            db,
            user,
            vault,
            settings,
            request=request,
            new_secret=secret,
            notice="Ny signeringshemmelighet: varsler signeres med den fra nå av.",
        )

    @post("/varsler/test", status_code=200)
    async def send_test(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        vault: NamedDependency[KeyVault],
        services: NamedDependency[Services],
    ) -> Response:
        """Send testvarsel: queued and attempted at once, so the page shows the answer: a
        failure in red with its reason (the status code or the error)."""
        endpoint = await _owned_endpoint(db, user)
        delivery_id = await notifications.queue_test_event(db, endpoint)
        worker = notifications.NotificationWorker(services.session_factory, vault, services.guarded)
        notice: str | None = "Testvarselet ble levert."
        failure: str | None = None
        if not await worker.deliver(delivery_id):
            attempt = await notifications.last_attempt(db, delivery_id)
            reason = (attempt.error if attempt else None) or "Varselet kunne ikke sendes"
            notice = None
            failure = (
                f"Testvarselet ble ikke tatt imot: {reason}. "
                "Vi prøver igjen automatisk; se leveranseloggen."
            )
        if not wants_fragment(request):
            return redirect(request, "/innstillinger/varsler")
        return await _notifications_page(
            db, user, vault, services.settings, request=request, notice=notice, failure=failure
        )

    @post("/varsler/e-post", status_code=200)
    async def save_email_alerts(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        vault: NamedDependency[KeyVault],
        settings: NamedDependency[Settings],
        data: Form,
    ) -> Response:
        """E-postvarsler: the office's address, and whether alerts are sent."""
        address = field(data, "address")
        enabled = field(data, "enabled") in ("on", "true")
        page = partial(_notifications_page, db, user, vault, settings, request=request, email=True)
        try:
            actor = audit.actor_of(user, client_address(request))
            setting = await notifications.save_setting(db, actor, address, enabled=enabled)
        except notifications.NotificationInputError as exc:
            return await page(
                email_values={"address": address, "enabled": enabled},
                email_errors={exc.field: exc.message},
                status_code=422,
            )
        if not setting.enabled:
            notice = "E-postvarsler er slått av."
        elif settings.smtp.configured:
            notice = f"E-postvarsler sendes til {setting.address} fra nå av."
        else:
            notice = (
                "Adressen er lagret, men ingen e-post sendes før e-post er satt opp på serveren."
            )
        return await page(email_notice=notice)

    @post("/varsler/e-post/test", status_code=200)
    async def send_test_email(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        vault: NamedDependency[KeyVault],
        settings: NamedDependency[Settings],
    ) -> Response:
        """Send test-e-post: one e-mail to the saved address now; a failure in red with why."""
        setting = await notifications.get_setting(db, user.office_id)
        if setting is None or not setting.address:
            raise NotFoundException()
        page = partial(_notifications_page, db, user, vault, settings, request=request, email=True)
        if not settings.smtp.configured:
            return await page(email_failure=SMTP_MISSING)
        try:
            await notifications.send_test(
                notifications.Mailer(settings.smtp), setting.address, user.office_name
            )
        except notifications.MailError as exc:
            return await page(email_failure=f"Test-e-posten ble ikke sendt: {exc.reason}")
        return await page(email_notice=f"Test-e-posten er sendt til {setting.address}.")

    @post("/varsler/slett", status_code=200)
    async def delete_endpoint(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
    ) -> Response:
        endpoint = await _owned_endpoint(db, user)
        actor = audit.actor_of(user, client_address(request))
        await notifications.delete_endpoint(db, endpoint, actor)
        return redirect(request, "/innstillinger/varsler")

    @get("/varsler/logg")
    async def delivery_log(
        self, db: NamedDependency[AsyncSession], user: NamedDependency[CurrentUser]
    ) -> Template:
        """Leveranselogg alone: what the page polls."""
        return await _log_fragment(db, await _owned_endpoint(db, user))

    @post("/varsler/leveranser/{delivery_id:int}/prov-igjen", status_code=200)
    async def retry_delivery(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        delivery_id: FromPath[int],
    ) -> Response:
        endpoint = await _owned_endpoint(db, user)
        assert endpoint.id is not None
        actor = audit.actor_of(user, client_address(request))
        if not await retry_delivery(db, actor, endpoint.id, delivery_id):
            raise NotFoundException()
        if not wants_fragment(request):
            return redirect(request, "/innstillinger/varsler")
        return await _log_fragment(db, endpoint)


async def _owned_endpoint(db: AsyncSession, user: CurrentUser) -> NotificationEndpoint:
    endpoint = await notifications.get_endpoint(db, user.office_id)
    if endpoint is None:
        raise NotFoundException()
    return endpoint


async def _log_fragment(db: AsyncSession, endpoint: NotificationEndpoint) -> Template:
    assert endpoint.id is not None
    return Template(
        "partials/notification_log.html",
        context={"log": await notifications.delivery_log(db, endpoint.id)},
    )


async def _tokens_page(
    db: AsyncSession,
    user: CurrentUser,
    *,
    request: HTMXRequest | None = None,
    created: tuple[object, str] | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Template:
    fragment = request is not None and wants_fragment(request)
    return Template(
        "partials/api_tokens.html" if fragment else "pages/settings_api.html",
        context={
            "user": user,
            "tab": "api",
            "tokens": await api_tokens.list_tokens(db, user.office_id),
            "created": created,
            "values": values or {},
            "errors": errors or {},
        },
        status_code=422 if errors else 200,
        headers=NO_STORE if created else None,
    )


async def _notifications_page(
    db: AsyncSession,
    user: CurrentUser,
    vault: KeyVault,
    settings: Settings,
    *,
    request: HTMXRequest | None = None,
    values: dict[str, object] | None = None,
    errors: dict[str, str] | None = None,
    new_secret: str | None = None,
    notice: str | None = None,
    failure: str | None = None,
    email: bool = False,
    email_values: dict[str, object] | None = None,
    email_errors: dict[str, str] | None = None,
    email_notice: str | None = None,
    email_failure: str | None = None,
    status_code: int = 200,
) -> Template:
    """Varsler: the webhook and the e-mail alerts. An htmx request gets the section it
    changed (`email`: the e-mail alerts'), else the whole page."""
    endpoint = await notifications.get_endpoint(db, user.office_id)
    alert_setting = await notifications.get_setting(db, user.office_id)
    fragment = request is not None and wants_fragment(request)
    log = await notifications.delivery_log(db, endpoint.id) if endpoint and endpoint.id else []
    if not fragment:
        template = "pages/settings_notifications.html"
    elif email:
        template = "partials/notification_email.html"
    else:
        template = "partials/notification_endpoint.html"
    return Template(
        template,
        context={
            "user": user,
            "tab": "varsler",
            "endpoint": endpoint,
            "secret": notifications.reveal_secret(vault, endpoint) if endpoint else None,
            "new_secret": new_secret,
            "values": values
            or ({"url": endpoint.url, "enabled": endpoint.enabled} if endpoint else {}),
            "errors": errors or {},
            "notice": notice,
            "failure": failure,
            "log": log,
            "event_types": sorted(notifications.EVENT_TYPES.values()),
            "smtp_configured": settings.smtp.configured,
            "smtp_missing": SMTP_MISSING,
            "alert_setting": alert_setting,
            "email_values": email_values
            or (
                {"address": alert_setting.address, "enabled": alert_setting.enabled}
                if alert_setting
                else {"address": "", "enabled": True}
            ),
            "email_errors": email_errors or {},
            "email_notice": email_notice,
            "email_failure": email_failure,
        },
        status_code=status_code,
        headers=NO_STORE,
    )
