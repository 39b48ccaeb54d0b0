"""Invitations: an administrator invites a colleague by e-mail with a role; the colleague
opens a single-use link, valid for 72 hours, and joins the office.

The link carries a random token (`secrets.token_urlsafe(32)`); only its sha256 is stored, so
the link is shown once (and e-mailed when SMTP is configured) and cannot be read back. A
person is created only when the link is taken: by setting a password here, or by signing in
through the office's identity provider (`pending_invitation_for_email` and
`accept_invitation_via_sso`, for the single sign-on code). Taking a link is a compare-and-set
on the invitation row, so two tabs or two processes cannot both use it.

Every change is written to the audit log in its own transaction (`services.audit.record`);
the token never is.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from enum import Enum
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Office, User
from models.base import utcnow
from models.office import Invitation, Role, SigninSettings
from services import audit, totp
from services.audit import Actor
from services.auth import hash_password, normalize_email, office_sso_rule
from services.notifications.email_alerts import ascii_host, check_address
from services.notifications.endpoints import NotificationInputError
from services.passwords import password_problem
from services.settings import OidcConfig

VALID_FOR = timedelta(hours=72)
OSLO = ZoneInfo("Europe/Oslo")
PATH = "/invitasjon/"  # + the token: the link the invited person opens
NAME_MAX = 200
INVITATION_SIGNIN = "invitasjon"  # the method of the sign-in that taking a link is


class InviteError(ValueError):
    """Refused, with the Norwegian message for the form field named."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class LinkState(Enum):
    """What an invitation link is now; only VALID may be taken."""

    VALID = (200, "")
    UNKNOWN = (
        404,
        "Lenken finnes ikke. Sjekk at hele lenken er med, eller be en administrator i kontoret "
        "om en ny invitasjon.",
    )
    EXPIRED = (
        410,
        "Invitasjonen er utløpt: en invitasjon gjelder i 72 timer. Be en administrator i "
        "kontoret om en ny.",
    )
    USED = (
        410,
        "Invitasjonen er allerede tatt i bruk. Har du satt passord, logger du inn som vanlig.",
    )
    REVOKED = (
        410,
        "Invitasjonen er trukket tilbake. Be en administrator i kontoret om en ny hvis du "
        "skal ha tilgang.",
    )
    TAKEN = (
        409,
        "Det finnes allerede en bruker med denne e-postadressen. Logg inn som vanlig, eller be "
        "en administrator om hjelp.",
    )

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        self.message = message


class LinkUnusable(Exception):
    """The link cannot be taken (expired, used, revoked, unknown, or the e-mail is taken)."""

    def __init__(self, state: LinkState) -> None:
        super().__init__(state.name)
        self.state = state


@dataclass(frozen=True)
class NewInvitation:
    invitation: Invitation
    token: str  # in the link; shown once, never stored
    replaced: bool  # an earlier pending invitation to the same address was revoked


@dataclass(frozen=True)
class Opened:
    """An invitation link as its page shows it."""

    state: LinkState
    invitation: Invitation | None = None
    office_name: str = ""
    sso_name: str = ""  # the identity provider's name when the office has one switched on
    sso_required: bool = False  # local passwords are off in this office

    @property
    def role(self) -> Role | None:
        return Role(self.invitation.role) if self.invitation else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + PATH + token


def is_pending(invitation: Invitation, now: datetime | None = None) -> bool:
    return (
        invitation.accepted_at is None
        and invitation.revoked_at is None
        and invitation.expires_at > (now or utcnow())
    )


def check_email(raw: str) -> str:
    if not raw.strip():
        raise InviteError("email", "Fyll inn e-postadressen til den du vil invitere.")
    try:
        return normalize_email(check_address(raw))
    except NotificationInputError:
        raise InviteError(
            "email", "Dette er ikke en gyldig e-postadresse. Skriv den slik: kari@kontoret.no"
        ) from None


def check_role(raw: str) -> Role:
    try:
        return Role(raw)
    except ValueError:
        raise InviteError("role", "Velg en rolle.") from None


# -- inviting ----------------------------------------------------------------------------


async def invite(db: AsyncSession, actor: Actor, raw_email: str, raw_role: str) -> NewInvitation:
    """A new invitation (committed with its audit record). A pending invitation to the same
    address in this office is revoked: the newest link is the one that works."""
    email = check_email(raw_email)
    role = check_role(raw_role)
    if (await db.exec(select(User.id).where(col(User.email) == email))).first() is not None:
        # Whether that person is in this office or another is not said: offices are apart.
        raise InviteError("email", f"{email} har allerede en bruker og kan ikke inviteres.")
    now = utcnow()
    earlier = await _pending_for(db, actor.office_id, email, now)
    for old in earlier:
        old.revoked_at = now
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        office_id=actor.office_id,
        email=email,
        role=role.value,
        token_hash=token_hash(token),
        invited_by=actor.user_id,
        created_at=now,
        expires_at=now + VALID_FOR,
    )
    db.add(invitation)
    audit.record(
        db,
        actor,
        "user.invited",
        email,
        role=role.norwegian,
        **({"replaced": "forrige invitasjon trukket tilbake"} if earlier else {}),
    )
    await db.commit()
    await db.refresh(invitation)
    return NewInvitation(invitation, token, replaced=bool(earlier))


async def _pending_for(
    db: AsyncSession, office_id: int, email: str, now: datetime
) -> list[Invitation]:
    rows = await db.exec(
        select(Invitation).where(
            col(Invitation.office_id) == office_id,
            col(Invitation.email) == email,
            col(Invitation.accepted_at).is_(None),
            col(Invitation.revoked_at).is_(None),
            col(Invitation.expires_at) > now,
        )
    )
    return list(rows.all())


async def open_invitations(db: AsyncSession, office_id: int) -> list[Invitation]:
    """Not taken and not revoked, newest first: pending ones and those that ran out."""
    rows = await db.exec(
        select(Invitation)
        .where(
            col(Invitation.office_id) == office_id,
            col(Invitation.accepted_at).is_(None),
            col(Invitation.revoked_at).is_(None),
        )
        .order_by(col(Invitation.created_at).desc(), col(Invitation.id).desc())
    )
    return list(rows.all())


async def revoke(db: AsyncSession, actor: Actor, invitation_id: int) -> Invitation | None:
    """Trekk tilbake: the link stops working at once. None: no such open invitation here."""
    invitation = (
        await db.exec(
            select(Invitation).where(
                col(Invitation.id) == invitation_id,
                col(Invitation.office_id) == actor.office_id,
                col(Invitation.accepted_at).is_(None),
                col(Invitation.revoked_at).is_(None),
            )
        )
    ).first()
    if invitation is None:
        return None
    invitation.revoked_at = utcnow()
    audit.record(
        db, actor, "user.invitation_revoked", invitation.email, role=Role(invitation.role).norwegian
    )
    await db.commit()
    return invitation


# -- the invited person's side -----------------------------------------------------------


async def open_link(db: AsyncSession, token: str, oidc_config: OidcConfig | None = None) -> Opened:
    """The invitation behind a link, and what its page may offer."""
    invitation = (
        await db.exec(select(Invitation).where(col(Invitation.token_hash) == token_hash(token)))
    ).first()
    if invitation is None:
        return Opened(LinkState.UNKNOWN)
    if invitation.revoked_at is not None:
        return Opened(LinkState.REVOKED)
    if invitation.accepted_at is not None:
        return Opened(LinkState.USED)
    if invitation.expires_at <= utcnow():
        return Opened(LinkState.EXPIRED)
    office = await db.get(Office, invitation.office_id)
    signin = (
        await db.exec(
            select(SigninSettings).where(col(SigninSettings.office_id) == invitation.office_id)
        )
    ).first()
    # The same rule as at /login: in force only with a provider that can sign people in.
    rule = await office_sso_rule(db, invitation.office_id, oidc_config)
    sso = rule is not None or (signin is not None and signin.oidc_enabled)
    name = rule.provider_name if rule else (signin.oidc_display_name if signin else "")
    return Opened(
        LinkState.VALID,
        invitation,
        office_name=office.name if office else "",
        sso_name=(name or "identitetsleverandøren") if sso else "",
        sso_required=rule is not None,
    )


async def accept(
    db: AsyncSession,
    token: str,
    name: str,
    password: str,
    repeated: str,
    address: str,
    oidc_config: OidcConfig | None = None,
) -> User:
    """Takes the link: the person is created with this name and password and the
    invitation's role (committed with `user.joined`). InviteError for the form, LinkUnusable
    when the link cannot be taken (nothing is created then)."""
    opened = await open_link(db, token, oidc_config)
    if opened.state is not LinkState.VALID or opened.invitation is None:
        raise LinkUnusable(opened.state)
    if opened.sso_required:
        raise InviteError("password", f"Kontoret bruker {opened.sso_name} for pålogging.")
    name = " ".join(name.split())
    if not name:
        raise InviteError("name", "Fyll inn navnet ditt.")
    if len(name) > NAME_MAX:
        raise InviteError("name", f"Navnet kan ha høyst {NAME_MAX} tegn.")
    if problem := password_problem(password):
        raise InviteError("password", problem.norwegian)
    if password != repeated:
        raise InviteError("repeat", "Passordene er ikke like.")
    password_hash = await hash_password(password)
    user = await _join(
        db, opened.invitation, name=name, password_hash=password_hash, address=address
    )
    if not await totp.required_by_office(db, user.office_id):
        # Taking the link signs the person in: a sign-in like any other in the log. (An
        # office requiring the second factor has it set up first; that step records it.)
        assert user.id is not None
        actor = Actor(user.office_id, user.email, user_id=user.id, address=address)
        audit.record(db, actor, "signin", method=INVITATION_SIGNIN, second_factor="nei")
    await db.commit()
    return user


async def _join(
    db: AsyncSession,
    invitation: Invitation,
    *,
    name: str,
    password_hash: str = "",
    oidc_subject: str | None = None,
    address: str = "",
) -> User:
    """Claims the invitation and creates its person (flushed; the caller commits)."""
    now = utcnow()
    claimed = await db.exec(
        update(Invitation)
        .where(
            col(Invitation.id) == invitation.id,
            col(Invitation.accepted_at).is_(None),
            col(Invitation.revoked_at).is_(None),
            col(Invitation.expires_at) > now,
        )
        .values(accepted_at=now)
    )
    if claimed.rowcount != 1:
        await db.rollback()
        raise LinkUnusable(LinkState.USED)
    taken = (await db.exec(select(User.id).where(col(User.email) == invitation.email))).first()
    if taken is not None:
        await db.rollback()
        raise LinkUnusable(LinkState.TAKEN)
    user = User(
        office_id=invitation.office_id,
        email=invitation.email,
        name=name[:NAME_MAX],
        password_hash=password_hash,
        role=invitation.role,
        oidc_subject=oidc_subject,
        last_login_at=now,
    )
    db.add(user)
    await db.flush()
    assert user.id is not None
    actor = Actor(invitation.office_id, user.email, user_id=user.id, address=address)
    audit.record(
        db,
        actor,
        "user.joined",
        user.email,
        role=Role(invitation.role).norwegian,
        via="identitetsleverandør" if oidc_subject else "passord",
    )
    return user


# -- for single sign-on ------------------------------------------------------------------


async def pending_invitation_for_email(
    db: AsyncSession, office_id: int, email: str
) -> Invitation | None:
    """The office's pending (not taken, not revoked, not expired) invitation to this
    address, newest first: what a first sign-in through the identity provider with this
    verified e-mail may take. The caller must have checked that the provider verified it."""
    pending = await _pending_for(db, office_id, normalize_email(email), utcnow())
    return max(pending, key=lambda i: (i.created_at, i.id or 0)) if pending else None


async def accept_invitation_via_sso(
    db: AsyncSession, invitation: Invitation, *, subject: str, name: str = "", address: str = ""
) -> User:
    """Takes the invitation for a person signing in through the identity provider: created
    with the invitation's role, no local password, and the provider's subject. Flushed, not
    committed: the caller commits it with its own sign-in record. LinkUnusable when the
    invitation was taken, revoked or expired meanwhile, or the e-mail became a user (the
    session is rolled back then)."""
    return await _join(db, invitation, name=name, oidc_subject=subject, address=address)


# -- the e-mail --------------------------------------------------------------------------


def invitation_email(
    *,
    sender: str,
    invitation: Invitation,
    url: str,
    office_name: str,
    invited_by: str,
    now: datetime,
) -> EmailMessage:
    office = _one_line(office_name)
    expires = invitation.expires_at.astimezone(OSLO).strftime("%d.%m.%Y kl. %H:%M")
    body = (
        "Hei,\n\n"
        f"{_one_line(invited_by)} har invitert deg til {office} i ERP-integrasjon, "
        f"med rollen {Role(invitation.role).norwegian}.\n\n"
        "Åpne lenken for å velge passord og komme i gang:\n\n"
        f"{url}\n\n"
        f"Lenken kan brukes én gang og gjelder til {expires}. "
        "Ventet du ikke denne e-posten, kan du se bort fra den.\n"
    )
    local, _, domain = invitation.email.rpartition("@")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = f"{local}@{ascii_host(domain)}"
    message["Subject"] = f"Invitasjon til {office} i ERP-integrasjon"[:200]
    message["Date"] = format_datetime(now)
    sender_domain = parseaddr(sender)[1].rpartition("@")[2]
    message["Message-ID"] = make_msgid("erp-invite", domain=ascii_host(sender_domain))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def _one_line(text: str) -> str:
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())
