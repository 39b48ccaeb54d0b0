from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel, UniqueConstraint

from models.base import utcnow


class Office(SQLModel, table=True):
    """An accounting office (regnskapskontor): the tenant every row belongs to."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class Role(StrEnum):
    """What a person may do; each role may do everything the ones below it may."""

    ADMINISTRATOR = "administrator"  # integrations and keys, tokens, settings, users
    ACCOUNTANT = "regnskapsforer"  # switches, bulk actions, syncs, imports, reading
    READER = "lesetilgang"  # reading only

    @property
    def norwegian(self) -> str:
        return ROLE_NAMES[self]


ROLE_NAMES = {
    Role.ADMINISTRATOR: "Administrator",
    Role.ACCOUNTANT: "Regnskapsfører",
    Role.READER: "Lesetilgang",
}


class User(SQLModel, table=True):
    __tablename__ = "user_account"

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True, ondelete="CASCADE")
    email: str = Field(max_length=320, unique=True)
    name: str = Field(default="", max_length=200)
    # Empty: no local password (signs in through the office's identity provider, or has
    # not yet accepted the invitation).
    password_hash: str = Field(max_length=255)
    role: str = Field(default=Role.ADMINISTRATOR, max_length=20)
    # A deactivated person cannot sign in; the row stays so the audit log keeps its name.
    active: bool = Field(default=True)
    # The identity provider's subject ("sub"), once the person has signed in through it.
    oidc_subject: str | None = Field(default=None, max_length=255, unique=True)
    # TOTP secret, encrypted with the key vault; enabled once a first code was confirmed.
    totp_secret_ciphertext: str | None = Field(default=None, max_length=500)
    totp_enabled_at: datetime | None = None
    last_login_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class RecoveryCode(SQLModel, table=True):
    """Single-use codes that stand in for a lost authenticator; only their hashes are kept."""

    __tablename__ = "recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    code_hash: str = Field(max_length=64)  # sha256 hex of the normalised code
    used_at: datetime | None = None


class Invitation(SQLModel, table=True):
    """A single-use link for a colleague to join the office with a role."""

    __tablename__ = "invitation"

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True, ondelete="CASCADE")
    email: str = Field(max_length=320)
    role: str = Field(max_length=20)
    token_hash: str = Field(max_length=64, unique=True)  # sha256 hex; the link is shown once
    invited_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    accepted_at: datetime | None = None
    revoked_at: datetime | None = None


class SigninSettings(SQLModel, table=True):
    """How the office's people sign in: its OpenID Connect provider and the rules."""

    __tablename__ = "signin_settings"
    __table_args__ = (UniqueConstraint("office_id"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", ondelete="CASCADE")
    oidc_enabled: bool = Field(default=False)
    oidc_display_name: str = Field(default="", max_length=100)  # "Logg inn med <this>"
    oidc_issuer: str = Field(default="", max_length=500)
    oidc_client_id: str = Field(default="", max_length=255)
    oidc_client_secret_ciphertext: str | None = Field(default=None, max_length=1000)
    # Create a person on first sign-in (with default_role) rather than only match invited ones.
    oidc_create_users: bool = Field(default=False)
    oidc_default_role: str = Field(default=Role.READER, max_length=20)
    # A claim (e.g. "groups" or "roles") whose values map to our roles, as JSON
    # {"claim value": "role"}; empty: roles are kept as set here.
    oidc_role_claim: str = Field(default="", max_length=100)
    oidc_role_map: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # Local passwords off: everyone signs in through the provider.
    sso_required: bool = Field(default=False)
    totp_required: bool = Field(default=False)
    audit_retention_years: int = Field(default=5)
    updated_at: datetime = Field(default_factory=utcnow)
