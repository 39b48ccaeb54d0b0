"""Innstillinger → Brukere (administrators): the office's people and invitations; and the
public page where an invited person takes the link (/invitasjon/{token})."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Redirect, Response, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models.base import utcnow
from models.office import Role
from routes.auth import client_address, to_second_step
from routes.forms import Form, field
from routes.integrations import redirect
from routes.params import ID_GUARDS
from services import invitations, signin, users
from services.audit import Actor, actor_of
from services.auth import CurrentUser
from services.notifications import Mailer, MailError
from services.passwords import MAX_LENGTH, MIN_LENGTH
from services.settings import Settings
from web.dependencies import wants_fragment
from web.guards import ADMINISTRATOR, PUBLIC
from web.sessions import rotate_session_id

log = logging.getLogger("erp.users")

PAGE = "/innstillinger/brukere"
NO_STORE = {"Cache-Control": "no-store"}  # the page that shows a new link
ROLES = list(Role)


class UsersController(Controller):
    path = PAGE
    guards = ID_GUARDS
    opt = ADMINISTRATOR
    include_in_schema = False

    @get("/")
    async def index(
        self, db: NamedDependency[AsyncSession], user: NamedDependency[CurrentUser]
    ) -> Template:
        return await _page(db, user)

    @post("/", status_code=200)
    async def invite(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        settings: NamedDependency[Settings],
        data: Form,
    ) -> Template:
        """Inviter: the link is in this response (and the e-mail) and never again."""
        values = {"email": field(data, "email")[:320], "role": field(data, "role")}
        actor = _actor(request, user)
        try:
            new = await invitations.invite(db, actor, values["email"], values["role"])
        except invitations.InviteError as exc:
            return await _page(
                db, user, request=request, values=values, errors={exc.field: exc.message}
            )
        url = invitations.link(_base_url(request, settings), new.token)
        mailed, mail_failure = await _send(settings, new, url, user)
        created = {
            "email": new.invitation.email,
            "role": Role(new.invitation.role),
            "url": url,
            "expires_at": new.invitation.expires_at,
            "replaced": new.replaced,
            "mailed": mailed,
            "mail_failure": mail_failure,
        }
        return await _page(db, user, request=request, created=created)

    @post("/invitasjoner/{invitation_id:int}/trekk-tilbake", status_code=200)
    async def revoke(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        invitation_id: FromPath[int],
    ) -> Response:
        revoked = await invitations.revoke(db, _actor(request, user), invitation_id)
        if revoked is None:
            raise NotFoundException()
        if not wants_fragment(request):
            return redirect(request, PAGE)
        notice = f"Invitasjonen til {revoked.email} er trukket tilbake. Lenken virker ikke lenger."
        return await _page(db, user, request=request, notice=notice)

    @get("/{user_id:int}")
    async def row(
        self,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        user_id: FromPath[int],
    ) -> Template:
        """Avbryt: the row as it is."""
        return _row(user, await _person(db, user, user_id))

    @get("/{user_id:int}/endre")
    async def edit(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        user_id: FromPath[int],
    ) -> Template:
        """Endre rolle: the row as a form (the whole page with it, without htmx)."""
        person = await _person(db, user, user_id)
        if not wants_fragment(request):
            return await _page(db, user, editing=person.id)
        return _row(user, person, editing=True)

    @post("/{user_id:int}/rolle", status_code=200)
    async def change_role(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        user_id: FromPath[int],
        data: Form,
    ) -> Response:
        actor, role = _actor(request, user), field(data, "role")
        change = users.change_role(db, actor, user_id, role)
        return await _change(request, db, user, user_id, change, editing=True)

    @post("/{user_id:int}/deaktiver", status_code=200)
    async def deactivate(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        user_id: FromPath[int],
    ) -> Response:
        change = users.deactivate(db, _actor(request, user), user_id)
        return await _change(request, db, user, user_id, change)

    @post("/{user_id:int}/aktiver", status_code=200)
    async def reactivate(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        user: NamedDependency[CurrentUser],
        user_id: FromPath[int],
    ) -> Response:
        change = users.reactivate(db, _actor(request, user), user_id)
        return await _change(request, db, user, user_id, change)


class InvitationController(Controller):
    """The invited person's page: public, the token in the path is the only key."""

    path = "/invitasjon"
    include_in_schema = False
    opt = PUBLIC

    @get("/{token:str}")
    async def show(
        self,
        request: Request,
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        token: FromPath[str],
    ) -> Template:
        opened = await invitations.open_link(db, token[:100], settings.oidc)
        return _invitation_page(request, opened)

    @post("/{token:str}", status_code=200, opt=PUBLIC)
    async def take(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        token: FromPath[str],
        data: Form,
    ) -> Response:
        token = token[:100]
        name = field(data, "name")[:1000]
        try:
            joined = await invitations.accept(
                db,
                token,
                name=name,
                # Not cut: a password longer than login reads is refused, not shortened.
                password=field(data, "password"),
                repeated=field(data, "repeat"),
                address=client_address(request),
                oidc_config=settings.oidc,
            )
        except invitations.LinkUnusable as exc:
            return _invitation_page(request, invitations.Opened(exc.state))
        except invitations.InviteError as exc:
            opened = await invitations.open_link(db, token, settings.oidc)
            return _invitation_page(
                request, opened, values={"name": name}, errors={exc.field: exc.message}
            )
        log.info("invitation taken: account=%r office=%s", joined.email, joined.office_id)
        assert joined.id is not None
        if step := await signin.second_step(db, joined):
            # The office requires the second factor: set up before signed in, as at /login.
            return to_second_step(request, joined.id, step)
        rotate_session_id(request)
        request.set_session({"user_id": joined.id})
        return Redirect("/integrasjoner", status_code=303)


# -- helpers -----------------------------------------------------------------------------


def _actor(request: Request, user: CurrentUser) -> Actor:
    return actor_of(user, client_address(request))


def _base_url(request: Request, settings: Settings) -> str:
    """Where the invited person reaches this app: PUBLIC_BASE_URL; in demo mode (whose
    PUBLIC_BASE_URL names loopback for the simulators) and without it, the address this
    administrator used."""
    if settings.public_base_url and not settings.demo:
        return settings.public_base_url
    return str(request.base_url).rstrip("/")


async def _send(
    settings: Settings, new: invitations.NewInvitation, url: str, user: CurrentUser
) -> tuple[bool, str | None]:
    """E-mails the link when SMTP is set up: (sent, why not when it failed)."""
    if not settings.smtp.configured:
        return False, None
    message = invitations.invitation_email(
        sender=settings.smtp.sender,
        invitation=new.invitation,
        url=url,
        office_name=user.office_name,
        invited_by=user.name or user.email,
        now=utcnow(),
    )
    try:
        await Mailer(settings.smtp).send(message)
    except MailError as exc:
        log.warning("invitation e-mail not sent: %s", exc.detail)
        return False, exc.reason
    return True, None


async def _person(db: AsyncSession, user: CurrentUser, user_id: int) -> users.Person:
    found = await users.get_person(db, user.office_id, user_id)
    if found is None:
        raise NotFoundException()
    return found


async def _change(
    request: HTMXRequest,
    db: AsyncSession,
    user: CurrentUser,
    user_id: int,
    change: Coroutine[Any, Any, users.Person | None],
    *,
    editing: bool = False,
) -> Response:
    """One change to a person's row: the row again (htmx) or back to the page."""
    try:
        changed = await change
    except users.UserChangeError as exc:
        person = await _person(db, user, user_id)
        if not wants_fragment(request):
            return await _page(
                db, user, editing=person.id if editing else None, row_errors={user_id: exc.message}
            )
        return _row(user, person, editing=editing, error=exc.message)
    if changed is None:
        raise NotFoundException()
    if not wants_fragment(request):
        return Redirect(PAGE, status_code=303)
    return _row(user, changed)


def _row(
    user: CurrentUser, person: users.Person, *, editing: bool = False, error: str | None = None
) -> Template:
    return Template(
        "partials/user_row_edit.html" if editing else "partials/user_row.html",
        context={"user": user, "person": person, "roles": ROLES, "error": error},
        status_code=422 if error else 200,
    )


async def _page(
    db: AsyncSession,
    user: CurrentUser,
    *,
    request: HTMXRequest | None = None,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    created: dict[str, Any] | None = None,
    notice: str | None = None,
    editing: int | None = None,
    row_errors: dict[int, str] | None = None,
) -> Template:
    fragment = request is not None and wants_fragment(request)
    failed = bool(errors or row_errors)
    return Template(
        "partials/user_people.html" if fragment else "pages/settings_users.html",
        context={
            "user": user,
            "tab": "brukere",
            "people": await users.list_people(db, user.office_id),
            "invitations": await invitations.open_invitations(db, user.office_id),
            "now": utcnow(),
            "roles": ROLES,
            "role_names": {role.value: role.norwegian for role in ROLES},
            "values": values or {"email": "", "role": Role.ACCOUNTANT.value},
            "errors": errors or {},
            "created": created,
            "notice": notice,
            "editing": editing,
            "row_errors": row_errors or {},
        },
        status_code=422 if failed else 200,
        headers=NO_STORE if created else None,
    )


def _invitation_page(
    request: Request,
    opened: invitations.Opened,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Template:
    status = opened.state.status_code if opened.state is not invitations.LinkState.VALID else 200
    return Template(
        "pages/invitation.html",
        context={
            "opened": opened,
            "usable": opened.state is invitations.LinkState.VALID,
            "values": values or {},
            "errors": errors or {},
            "min_length": MIN_LENGTH,
            "max_length": MAX_LENGTH,
            "signed_in": bool(request.session.get("user_id")) if request.session else False,
        },
        status_code=422 if errors else status,
        headers=NO_STORE,
    )
