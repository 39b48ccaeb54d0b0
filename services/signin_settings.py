"""Innstillinger → Pålogging: the office's OpenID Provider and its rules, as an administrator
saves them, checked, with the client secret encrypted by the key vault (never shown again:
the page says "lagret") and every change in the audit log (`signin_settings.changed`, the
secret as "endret").

Where the operator set the provider through OIDC_* (services/settings.py OidcConfig), the
provider's own fields are the operator's and are neither shown as editable nor saved here;
the rules still are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Office, User
from models.base import utcnow
from models.office import ROLE_NAMES, Role, SigninSettings
from services import audit, oidc
from services.audit import Actor
from services.crypto import KeyVault
from services.outbound_guard import (
    GuardedClient,
    OutboundError,
    OutboundPolicy,
    UrlRefused,
    check_url,
)

SECRET_MAX = 500
ISSUER_MAX = 500  # the columns' sizes (models/office.py SigninSettings)
SECRET_CIPHERTEXT_MAX = 1000
ROLE_MAP_MAX_LINES = 100
AUDIT_TARGET = "Pålogging"


def _operator(office_id: int) -> Actor:
    """The operator at the command line, as the audit log names them."""
    return Actor(office_id=office_id, label="driftsansvarlig (kommandolinje)")


# The audit log's names of the settings, in the page's order.
LABELS = {
    "oidc_enabled": "Innlogging via identitetsleverandør",
    "oidc_display_name": "Navn på leverandøren",
    "oidc_issuer": "Utsteder (issuer)",
    "oidc_client_id": "Klient-ID",
    "oidc_client_secret": "Klienthemmelighet",
    "oidc_create_users": "Opprett brukere ved første innlogging",
    "oidc_default_role": "Standardrolle",
    "oidc_role_claim": "Rollekrav (claim)",
    "oidc_role_map": "Rollekobling",
    "sso_required": "Krev innlogging via identitetsleverandør",
    "totp_required": "Krev tofaktor for passordinnlogging",
}
PROVIDER_FIELDS = ("oidc_enabled", "oidc_display_name", "oidc_issuer", "oidc_client_id")


class SigninInputError(ValueError):
    """Refused, with a Norwegian message per form field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class SigninForm:
    """What the page posts; an empty `client_secret` keeps the stored one."""

    enabled: bool = False
    display_name: str = ""
    issuer: str = ""
    client_id: str = ""
    client_secret: str = ""
    create_users: bool = False
    default_role: str = Role.READER.value
    role_claim: str = ""
    role_map: str = ""
    sso_required: bool = False
    totp_required: bool = False

    @classmethod
    def from_row(cls, row: SigninSettings) -> SigninForm:
        return cls(
            enabled=row.oidc_enabled,
            display_name=row.oidc_display_name,
            issuer=row.oidc_issuer,
            client_id=row.oidc_client_id,
            create_users=row.oidc_create_users,
            default_role=row.oidc_default_role,
            role_claim=row.oidc_role_claim,
            role_map=role_map_text(oidc.parse_role_map(row.oidc_role_map)),
            sso_required=row.sso_required,
            totp_required=row.totp_required,
        )


async def load(db: AsyncSession, office_id: int) -> SigninSettings:
    """The office's row, or the defaults (not added to the session) when it has none."""
    return await oidc.signin_row(db, office_id) or SigninSettings(office_id=office_id)


# -- the role mapping as text ----------------------------------------------------------------


_ROLE_WORDS = {
    **{role.value: role for role in Role},
    **{name.lower(): role for role, name in ROLE_NAMES.items()},
    "regnskapsforer": Role.ACCOUNTANT,
}


def role_map_text(mapping: dict[str, Role]) -> str:
    """One line per value: `<claim value> = <role's Norwegian name>`."""
    return "\n".join(f"{value} = {role.norwegian}" for value, role in mapping.items())


def parse_role_map_text(text: str) -> dict[str, Role]:
    """`<claim value> = <role>` per line (the role by its name or value, any case); blank
    lines are skipped. ValueError names the line that is wrong."""
    mapping: dict[str, Role] = {}
    lines = [line.strip() for line in text.splitlines()]
    if sum(1 for line in lines if line) > ROLE_MAP_MAX_LINES:
        raise ValueError(f"Rollekoblingen kan ha høyst {ROLE_MAP_MAX_LINES} linjer.")
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        value, equals, word = line.rpartition("=")
        value, word = value.strip(), word.strip().lower()
        if not equals or not value:
            raise ValueError(
                f"Linje {number}: skriv verdien, et likhetstegn og rollen, "
                "som i «a1b2c3d4-… = Administrator»."
            )
        if word not in _ROLE_WORDS:
            raise ValueError(
                f"Linje {number}: «{word}» er ingen rolle. Bruk Administrator, "
                "Regnskapsfører eller Lesetilgang."
            )
        if len(value) > 255:
            raise ValueError(f"Linje {number}: verdien er for lang (høyst 255 tegn).")
        mapping[value] = _ROLE_WORDS[word]
    return mapping


# -- saving ---------------------------------------------------------------------------------


def _check(
    form: SigninForm,
    row: SigninSettings,
    *,
    vault: KeyVault,
    policy: OutboundPolicy,
    from_environment: bool,
) -> tuple[str, dict[str, Role], Role]:
    """The issuer as stored, the role mapping and the default role; SigninInputError with
    every field that is wrong."""
    errors: dict[str, str] = {}
    issuer = form.issuer.strip()
    if not from_environment:
        issuer, errors = _check_provider(form, row, vault, policy)
    try:
        default_role = Role(form.default_role)
    except ValueError:
        errors["default_role"] = "Velg en rolle."
        default_role = Role.READER
    claim = form.role_claim.strip()
    if len(claim) > 100 or any(c.isspace() for c in claim):
        errors["role_claim"] = "Skriv navnet på kravet uten mellomrom, for eksempel groups."
    mapping: dict[str, Role] = {}
    try:
        mapping = parse_role_map_text(form.role_map)
    except ValueError as exc:
        errors["role_map"] = str(exc)
    if mapping and not claim and "role_claim" not in errors:
        errors["role_claim"] = "Fyll inn hvilket krav (claim) verdiene i rollekoblingen står i."
    if errors:
        raise SigninInputError(errors)
    return issuer, mapping, default_role


def _check_provider(
    form: SigninForm, row: SigninSettings, vault: KeyVault, policy: OutboundPolicy
) -> tuple[str, dict[str, str]]:
    """The provider's own fields: the issuer as stored, and what is wrong, by field. Each
    is held to its column's size (a longer one would fail to save on PostgreSQL)."""
    errors: dict[str, str] = {}
    wanted = form.enabled
    name, issuer, client_id = form.display_name.strip(), form.issuer.strip(), form.client_id.strip()
    if len(name) > 100:
        errors["display_name"] = "Navnet kan ha høyst 100 tegn."
    elif wanted and not name:
        errors["display_name"] = "Fyll inn navnet som står på knappen, for eksempel Microsoft."
    if issuer:
        try:
            issuer = check_url(issuer, policy)
        except UrlRefused as exc:
            errors["issuer"] = exc.message
        else:
            if "?" in issuer or "#" in issuer:
                errors["issuer"] = "Utstederen kan ikke ha ? eller # i adressen."
            elif len(issuer) > ISSUER_MAX:
                errors["issuer"] = f"Utstederens adresse kan ha høyst {ISSUER_MAX} tegn."
    elif wanted:
        errors["issuer"] = (
            "Fyll inn utstederens adresse, for eksempel "
            "https://login.microsoftonline.com/<tenant-id>/v2.0"
        )
    if len(client_id) > 255:
        errors["client_id"] = "Klient-ID-en kan ha høyst 255 tegn."
    elif wanted and not client_id:
        errors["client_id"] = "Fyll inn klient-ID-en (Application (client) ID i Entra ID)."
    if problem := _secret_problem(form, row, vault, issuer, client_id):
        errors["client_secret"] = problem
    return issuer, errors


def _secret_problem(
    form: SigninForm, row: SigninSettings, vault: KeyVault, issuer: str, client_id: str
) -> str | None:
    secret = form.client_secret
    if len(secret) > SECRET_MAX or len(vault.encrypt(secret)) > SECRET_CIPHERTEXT_MAX:
        # Encrypted, a secret of many non-ASCII characters outgrows its column sooner.
        return f"Klienthemmeligheten kan ha høyst {SECRET_MAX} tegn (færre med æ, ø, å)."
    if secret or not row.oidc_client_secret_ciphertext:
        return "Fyll inn klienthemmeligheten." if form.enabled and not secret else None
    # The stored secret is the one for the stored issuer and client id.
    moved = issuer != row.oidc_issuer or client_id != row.oidc_client_id
    if moved and (issuer or client_id):
        return "Skriv inn klienthemmeligheten på nytt når utsteder eller klient-ID endres."
    return None


def _snapshot(row: SigninSettings) -> dict[str, Any]:
    return {
        "oidc_enabled": row.oidc_enabled,
        "oidc_display_name": row.oidc_display_name,
        "oidc_issuer": row.oidc_issuer,
        "oidc_client_id": row.oidc_client_id,
        "oidc_create_users": row.oidc_create_users,
        "oidc_default_role": Role(row.oidc_default_role).norwegian,
        "oidc_role_claim": row.oidc_role_claim,
        "oidc_role_map": role_map_text(oidc.parse_role_map(row.oidc_role_map)),
        "sso_required": row.sso_required,
        "totp_required": row.totp_required,
    }


async def save(
    db: AsyncSession,
    vault: KeyVault,
    actor: Actor,
    form: SigninForm,
    *,
    policy: OutboundPolicy,
    environment: oidc.Provider | None,
) -> list[str]:
    """Checks and stores the form, committed with its audit record; the names of the
    settings that changed (empty: nothing did). `environment`: the operator's provider when
    OIDC_* applies to this office (its fields are not saved then)."""
    row = await load(db, actor.office_id)
    issuer, mapping, default_role = _check(
        form, row, vault=vault, policy=policy, from_environment=environment is not None
    )
    if form.sso_required:
        await _may_require_sso(db, actor, form, issuer, row, environment)
    before = _snapshot(row)
    if environment is None:
        row.oidc_enabled = form.enabled
        row.oidc_display_name = form.display_name.strip()
        row.oidc_issuer = issuer
        row.oidc_client_id = form.client_id.strip()
    secret_changed = environment is None and bool(form.client_secret)
    if secret_changed:
        row.oidc_client_secret_ciphertext = vault.encrypt(form.client_secret)
    row.oidc_create_users = form.create_users
    row.oidc_default_role = default_role.value
    row.oidc_role_claim = form.role_claim.strip()
    row.oidc_role_map = json.dumps({k: v.value for k, v in mapping.items()}) if mapping else ""
    row.sso_required = form.sso_required
    row.totp_required = form.totp_required
    after = _snapshot(row)
    changes: dict[str, Any] = {
        LABELS[name]: {"before": before[name], "after": after[name]}
        for name in before
        if before[name] != after[name]
    }
    if secret_changed:
        changes[LABELS["oidc_client_secret"]] = audit.CHANGED
    if not changes:
        await db.rollback()
        return []
    row.updated_at = utcnow()
    db.add(row)
    audit.record(db, actor, "signin_settings.changed", AUDIT_TARGET, **changes)
    await db.commit()
    return list(changes)


async def allow_passwords(db: AsyncSession, office_name: str) -> bool:
    """The operator's way back in (`python app.py signin-settings --allow-passwords`):
    the office no longer requires single sign-on, so passwords (and `create-user`) work
    again. Recorded in the office's audit log as the operator's. False: it did not require
    it; ValueError: no such office."""
    office = (await db.exec(select(Office).where(col(Office.name) == office_name))).first()
    if office is None or office.id is None:
        raise ValueError(f"no office named {office_name!r}")
    row = await oidc.signin_row(db, office.id)
    if row is None or not row.sso_required:
        return False
    row.sso_required = False
    row.updated_at = utcnow()
    db.add(row)
    label = LABELS["sso_required"]
    audit.record(
        db,
        _operator(office.id),
        "signin_settings.changed",
        AUDIT_TARGET,
        **{label: {"before": True, "after": False}},
    )
    await db.commit()
    return True


async def _may_require_sso(
    db: AsyncSession,
    actor: Actor,
    form: SigninForm,
    issuer: str,
    row: SigninSettings,
    environment: oidc.Provider | None,
) -> None:
    """Requiring single sign-on turns local passwords off: only with a provider switched on
    and complete (kept so: it cannot be switched off while required), and only by an
    administrator who has signed in through it (so it works for them) when first required."""
    if environment is None:
        has_secret = bool(form.client_secret or row.oidc_client_secret_ciphertext)
        if not (form.enabled and issuer and form.client_id.strip() and has_secret):
            raise SigninInputError(
                {
                    "sso_required": "Slå på og sett opp innlogging via identitetsleverandør "
                    "før du krever den, eller fjern haken for å tillate passord igjen."
                }
            )
    else:
        issuer = environment.issuer
    if row.sso_required:
        return
    user = await db.get(User, actor.user_id) if actor.user_id else None
    subject = user.oidc_subject if user else None
    if not subject or not subject.startswith(oidc.issuer_tag(issuer) + ":"):
        raise SigninInputError(
            {
                "sso_required": "Logg inn via identitetsleverandøren selv først (logg ut og "
                "bruk knappen på innloggingssiden), så du vet at det virker før passordene "
                "slås av."
            }
        )


# -- Test tilkobling -----------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """What discovery said, for the page."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    keys: int
    algorithms: list[str]


class TestFailed(Exception):
    """Test tilkobling found a problem; `message` is Norwegian, for the page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def test_connection(http: GuardedClient, issuer: str, policy: OutboundPolicy) -> Found:
    """Fetches the issuer's discovery document and keys through the guard, as a sign-in
    does; TestFailed says what is wrong."""
    issuer = issuer.strip()
    if not issuer:
        raise TestFailed("Fyll inn utstederens adresse først.")
    try:
        check_url(issuer, policy)
    except UrlRefused as exc:
        raise TestFailed(f"Utstederen kan ikke brukes: {exc.message}") from exc
    where = oidc.discovery_url(issuer)
    try:
        # Fetched now, not the copies sign-ins use (which are refreshed by this).
        metadata = await oidc.discover(http, issuer, fresh=True)
        keys = await oidc.fetch_keys(http, metadata, fresh=True)
    except oidc.SigninFailed as exc:
        raise TestFailed(_test_problem(exc, where)) from exc
    return Found(
        issuer=str(metadata["issuer"]),
        authorization_endpoint=str(metadata["authorization_endpoint"]),
        token_endpoint=str(metadata["token_endpoint"]),
        keys=len(keys.keys),
        algorithms=[str(a) for a in metadata.get("id_token_signing_alg_values_supported") or []],
    )


def _test_problem(failure: oidc.SigninFailed, where: str) -> str:
    cause = failure.__cause__
    if failure.reason is oidc.Reason.UNREACHABLE:
        why = cause.reason if isinstance(cause, OutboundError) else "serverfeil hos leverandøren"
        return f"Fikk ikke kontakt med {where}: {why}."
    if failure.reason is oidc.Reason.ISSUER:
        return (
            f"{where} oppgir en annen utsteder ({failure.detail.rpartition(' ')[2]}). "
            "Utstederen må være nøyaktig den, for Entra ID "
            "https://login.microsoftonline.com/<tenant-id>/v2.0."
        )
    return (
        f"{where} svarte ikke med et gyldig OpenID Connect-oppsett ({failure.detail}). "
        "Sjekk utstederens adresse."
    )
