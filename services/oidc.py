"""Single sign-on through an office's OpenID Provider: OpenID Connect's authorization code
flow with PKCE (S256), state and nonce.

authlib speaks the protocol: the discovery document's checks, the authorization URL, the
PKCE challenge, the token request and its client authentication, and the ID token's claims
(issuer, audience, expiry, nonce, azp, at_hash) once joserfc has checked its signature
against the provider's published keys (JWKS). Nothing here parses or signs a JWT itself.

The issuer is an administrator's input, so every request to the provider (discovery, token,
keys) goes through the outbound guard (`GuardedClient`): public internet only, checked
when connecting, unless the operator allows private addresses (OUTBOUND_ALLOW_PRIVATE, as
the tests and the demo do for their loopback provider).

Where the provider comes from: `provider_for` merges the office's SigninSettings row with
the operator's OIDC_* settings (services/settings.py OidcConfig), which win for the
provider itself (issuer, client id and secret, name) in the office they apply to; the rules
(creating people, the default role, the role claim) are always the row's.

A person is found by the provider's subject, scoped to the issuer (`subject_key`); at a
first sign-in by a verified e-mail address: a person of the office not yet linked, or a
pending invitation; else created with the default role when the office allows it. Every
failure is a `SigninFailed` with a `Reason`: a Norwegian message for the login page and a
short code for the audit log, never a token's contents.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    DecodeError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingKeyError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Office, User
from models.base import utcnow
from models.office import Role, SigninSettings
from services import audit, users
from services.audit import Actor
from services.crypto import KeyVault
from services.outbound_guard import Answer, GuardedClient, OutboundError
from services.settings import OidcConfig

log = logging.getLogger("erp.oidc")

CALLBACK_PATH = "/login/oidc/callback"
SCOPE = "openid email profile"
DEADLINE = 10.0  # seconds for one request to the provider, connect to last byte
# A provider's discovery document and keys are reused this long: the sign-in button is
# public, and pressing it must not cost a request to the provider each time.
CACHE_SECONDS = 300.0
CACHE_MAX = 256  # issuers (and key sets) kept at most; all are forgotten beyond it
PENDING_KEY = "oidc"  # the session's key for a sign-in under way
PENDING_SECONDS = 600  # a sign-in must come back within ten minutes
LEEWAY = 60  # seconds of clock difference taken on the token's times
DEFAULT_NAME = "identitetsleverandøren"
# Signatures we check: public-key ones. "none" and the HMAC family (keyed with the client
# secret) are never taken, whatever the provider says it supports.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class Reason(Enum):
    """Why a sign-in through the provider failed: (code, Norwegian message). The code goes
    in the login page's address (`?sso=<code>`) and the audit log."""

    NOT_CONFIGURED = (
        "ikke-satt-opp",
        "Innlogging via identitetsleverandør er ikke satt opp for dette kontoret.",
    )
    UNREACHABLE = (
        "utilgjengelig",
        "Fikk ikke kontakt med identitetsleverandøren. Prøv igjen om litt. Vedvarer det, "
        "kan en administrator bruke «Test tilkobling» under Innstillinger → Pålogging.",
    )
    BAD_PROVIDER = (
        "ugyldig-oppsett",
        "Identitetsleverandøren svarte ikke som en OpenID Connect-leverandør skal. "
        "En administrator kan bruke «Test tilkobling» under Innstillinger → Pålogging.",
    )
    STATE = (
        "ugyldig-forsok",
        "Innloggingen kunne ikke fullføres: svaret fra identitetsleverandøren hører ikke til "
        "en innlogging som ble startet her, eller det er brukt før. Start på nytt med knappen.",
    )
    CANCELLED = (
        "avbrutt",
        "Innloggingen ble avbrutt hos identitetsleverandøren. Du er ikke logget inn.",
    )
    REFUSED = (
        "avvist",
        "Identitetsleverandøren godtok ikke innloggingen (koden eller klienthemmeligheten ble "
        "avvist). Prøv igjen, eller be en administrator sjekke oppsettet.",
    )
    AUDIENCE = (
        "feil-mottaker",
        "Innloggingen ble avvist: ID-tokenet er utstedt til et annet program enn dette "
        "(feil klient-ID). Be en administrator sjekke oppsettet.",
    )
    ISSUER = (
        "feil-utsteder",
        "Innloggingen ble avvist: ID-tokenet kommer fra en annen utsteder enn den som er satt opp.",
    )
    EXPIRED = (
        "utlopt",
        "Innloggingen ble avvist: ID-tokenet fra identitetsleverandøren er utløpt. "
        "Prøv igjen; skjer det igjen, kan klokken på serveren gå feil.",
    )
    SIGNATURE = (
        "ugyldig-signatur",
        "Innloggingen ble avvist: ID-tokenet har ikke en gyldig signatur fra "
        "identitetsleverandøren.",
    )
    NONCE = (
        "feil-nonce",
        "Innloggingen ble avvist: ID-tokenet hører ikke til denne innloggingen.",
    )
    INVALID_TOKEN = (
        "ugyldig-token",
        "Innloggingen ble avvist: ID-tokenet fra identitetsleverandøren er ikke gyldig.",
    )
    NO_EMAIL = (
        "ingen-epost",
        "Identitetsleverandøren oppga ingen bekreftet e-postadresse, så vi fant ikke brukeren "
        "din. Be en administrator i kontoret om hjelp.",
    )
    UNKNOWN_USER = (
        "ingen-bruker",
        "Du har ingen bruker i dette kontoret. Be en administrator i kontoret om en invitasjon.",
    )
    NOT_ALLOWED = (
        "ikke-tillatt",
        "E-postadressen hører til en annen bruker enn den du logget inn som hos "
        "identitetsleverandøren. Be en administrator i kontoret om hjelp.",
    )
    DEACTIVATED = (
        "deaktivert",
        "Brukeren din er deaktivert. Be en administrator i kontoret om hjelp.",
    )

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message

    @classmethod
    def by_code(cls, code: str) -> Reason | None:
        return next((reason for reason in cls if reason.code == code), None)


class SigninFailed(Exception):
    """A sign-in that did not happen; `detail` is for the server log (no token contents)."""

    def __init__(self, reason: Reason, detail: str = "", *, who: str = "") -> None:
        super().__init__(f"{reason.code}: {detail}" if detail else reason.code)
        self.reason = reason
        self.detail = detail
        self.who = who  # the e-mail address, once known: for the audit log


# -- which provider ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """An office's provider and its rules, as a sign-in uses them."""

    office_id: int
    display_name: str
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    create_users: bool = False
    default_role: Role = Role.READER
    role_claim: str = ""
    role_map: Mapping[str, Role] = field(default_factory=dict)
    from_environment: bool = False  # the operator's OIDC_* settings


@dataclass(frozen=True)
class Choice:
    """A button on the login page."""

    office_id: int
    label: str  # "Logg inn med Microsoft"


async def signin_row(db: AsyncSession, office_id: int) -> SigninSettings | None:
    return (
        await db.exec(select(SigninSettings).where(col(SigninSettings.office_id) == office_id))
    ).first()


async def environment_office(db: AsyncSession, config: OidcConfig) -> int | None:
    """The office the operator's OIDC_* settings apply to: the one OIDC_OFFICE names, or,
    without it, the only office there is (None when there are several)."""
    if not config.configured:
        return None
    query = select(Office.id).order_by(col(Office.id)).limit(2)
    if config.office:
        query = query.where(col(Office.name) == config.office)
    ids = list((await db.exec(query)).all())
    if len(ids) != 1:
        if ids or config.office:
            log.warning(
                "OIDC_ISSUER applies to no office: %s",
                f"no office named {config.office!r}"
                if config.office
                else "several offices; set OIDC_OFFICE",
            )
        return None
    return ids[0]


async def provider_for(
    db: AsyncSession, vault: KeyVault, config: OidcConfig, office_id: int
) -> Provider | None:
    """The office's provider, or None when it has none switched on and complete."""
    row = await signin_row(db, office_id)
    rules = _rules(row)
    if await environment_office(db, config) == office_id:
        assert config.issuer is not None
        return Provider(
            office_id=office_id,
            display_name=config.display_name or DEFAULT_NAME,
            issuer=config.issuer,
            client_id=config.client_id,
            client_secret=config.client_secret,
            from_environment=True,
            **rules,
        )
    if row is None or not is_complete(row):
        return None
    assert row.oidc_client_secret_ciphertext is not None
    return Provider(
        office_id=office_id,
        display_name=row.oidc_display_name or DEFAULT_NAME,
        issuer=row.oidc_issuer,
        client_id=row.oidc_client_id,
        client_secret=vault.decrypt(row.oidc_client_secret_ciphertext),
        **rules,
    )


def is_complete(row: SigninSettings) -> bool:
    return bool(
        row.oidc_enabled
        and row.oidc_issuer
        and row.oidc_client_id
        and row.oidc_client_secret_ciphertext
    )


def _rules(row: SigninSettings | None) -> dict[str, Any]:
    if row is None:
        return {}
    return {
        "create_users": row.oidc_create_users,
        "default_role": Role(row.oidc_default_role),
        "role_claim": row.oidc_role_claim,
        "role_map": parse_role_map(row.oidc_role_map),
    }


def parse_role_map(stored: str) -> dict[str, Role]:
    """The stored JSON {"claim value": "role"}; a value naming no role is left out."""
    try:
        raw = json.loads(stored) if stored else {}
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): Role(v) for k, v in raw.items() if v in Role._value2member_map_}


async def choices(db: AsyncSession, config: OidcConfig) -> list[Choice]:
    """The login page's buttons: one per office with a provider switched on (the office's
    name is added when there are several)."""
    rows = (
        await db.exec(
            select(SigninSettings, Office)
            .join(Office, col(Office.id) == col(SigninSettings.office_id))
            .order_by(col(Office.name))
        )
    ).all()
    found: dict[int, tuple[str, str]] = {
        row.office_id: (row.oidc_display_name or DEFAULT_NAME, office.name)
        for row, office in rows
        if is_complete(row)
    }
    env_office = await environment_office(db, config)
    if env_office is not None:
        office = await db.get(Office, env_office)
        found[env_office] = (config.display_name or DEFAULT_NAME, office.name if office else "")
    several = len(found) > 1
    return [
        Choice(office_id, f"Logg inn med {name}" + (f" ({office})" if several else ""))
        for office_id, (name, office) in sorted(found.items(), key=lambda item: item[1][1])
    ]


async def login_context(db: AsyncSession, config: OidcConfig, code: str | None) -> dict[str, Any]:
    """The login page's part: its buttons, and why the last sign-in through one failed
    (`code`: the page's `?sso=`)."""
    reason = Reason.by_code(code) if code else None
    return {
        "sso_choices": await choices(db, config),
        "sso_error": reason.message if reason else None,
    }


# -- talking to the provider ------------------------------------------------------------------


async def _fetch_json(
    http: GuardedClient,
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    """The status and the JSON answer; SigninFailed(UNREACHABLE) when there was none."""
    sent_headers = {"Accept": "application/json", **(headers or {})}
    try:
        answer: Answer = await http.send(
            method, url, body=body, headers=sent_headers, deadline=DEADLINE
        )
    except OutboundError as exc:
        raise SigninFailed(Reason.UNREACHABLE, f"{method} {_where(url)}: {exc}") from exc
    if answer.status >= 500:
        raise SigninFailed(Reason.UNREACHABLE, f"{method} {_where(url)}: {answer.status}")
    if not answer.complete:
        raise SigninFailed(Reason.BAD_PROVIDER, f"{method} {_where(url)}: answer too large")
    try:
        return answer.status, json.loads(answer.body)
    except ValueError as exc:
        raise SigninFailed(
            Reason.BAD_PROVIDER, f"{method} {_where(url)}: {answer.status}, not JSON"
        ) from exc


def _where(url: str) -> str:
    """Scheme, host and path: never a query (it may hold a code)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


_discovered: dict[str, tuple[float, OpenIDProviderMetadata]] = {}
_key_sets: dict[str, tuple[float, KeySet]] = {}


def forget_providers() -> None:
    """Forgets every discovery document and key set kept."""
    _discovered.clear()
    _key_sets.clear()


def _kept(cache: dict[str, tuple[float, Any]], key: str) -> Any:
    found = cache.get(key)
    return found[1] if found is not None and time.monotonic() < found[0] else None


def _keep(cache: dict[str, tuple[float, Any]], key: str, value: Any) -> None:
    if len(cache) >= CACHE_MAX and key not in cache:
        cache.clear()
    cache[key] = (time.monotonic() + CACHE_SECONDS, value)


async def discover(
    http: GuardedClient, issuer: str, *, fresh: bool = False
) -> OpenIDProviderMetadata:
    """The provider's discovery document, checked: its issuer is the one configured, and
    it names the endpoints and keys a code flow needs. Kept for CACHE_SECONDS per issuer
    (a failure is not kept); `fresh`: fetched anyway (Test tilkobling)."""
    if not fresh and (kept := _kept(_discovered, issuer)) is not None:
        return kept
    metadata = await _discover(http, issuer)
    _keep(_discovered, issuer, metadata)
    return metadata


async def _discover(http: GuardedClient, issuer: str) -> OpenIDProviderMetadata:
    status, data = await _fetch_json(http, "GET", discovery_url(issuer))
    if status != 200 or not isinstance(data, dict):
        raise SigninFailed(Reason.BAD_PROVIDER, f"discovery answered {status}")
    metadata = OpenIDProviderMetadata(data)
    try:
        metadata.validate_issuer()
        metadata.validate_authorization_endpoint()
        metadata.validate_token_endpoint()
        metadata.validate_jwks_uri()
        metadata.validate_response_types_supported()
        metadata.validate_id_token_signing_alg_values_supported()
    except ValueError as exc:
        raise SigninFailed(Reason.BAD_PROVIDER, f"discovery: {exc}") from exc
    if str(data["issuer"]).rstrip("/") != issuer.rstrip("/"):
        raise SigninFailed(Reason.ISSUER, f"discovery names the issuer {str(data['issuer'])!r}")
    if "code" not in data.get("response_types_supported", []):
        raise SigninFailed(Reason.BAD_PROVIDER, "discovery: no code flow")
    return metadata


async def fetch_keys(
    http: GuardedClient, metadata: Mapping[str, Any], *, fresh: bool = False
) -> KeySet:
    """The provider's signing keys (JWKS), kept as the discovery document is; `fresh`:
    fetched anyway (a token signed by a key not among those kept: the provider rolled its
    keys)."""
    where = str(metadata["jwks_uri"])
    if not fresh and (kept := _kept(_key_sets, where)) is not None:
        return kept
    status, data = await _fetch_json(http, "GET", where)
    if status != 200 or not isinstance(data, dict):
        raise SigninFailed(Reason.BAD_PROVIDER, f"jwks answered {status}")
    try:
        keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise SigninFailed(Reason.BAD_PROVIDER, f"jwks: {type(exc).__name__}") from exc
    _keep(_key_sets, where, keys)
    return keys


def _algorithms(metadata: Mapping[str, Any]) -> list[str]:
    offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    return [alg for alg in offered if alg in ALGORITHMS] or ["RS256"]


# -- the flow -----------------------------------------------------------------------------


async def start(
    http: GuardedClient, provider: Provider, redirect_uri: str
) -> tuple[str, dict[str, Any]]:
    """The provider's authorization URL to send the browser to, and what the session keeps
    until the browser comes back (single use)."""
    metadata = await discover(http, provider.issuer)
    state = generate_token(43)
    nonce = generate_token(43)
    verifier = generate_token(64)  # PKCE: 43-128 characters
    url = prepare_grant_uri(
        metadata["authorization_endpoint"],
        provider.client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=SCOPE,
        state=state,
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    pending = {
        "office_id": provider.office_id,
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "issuer": provider.issuer,
        "client_id": provider.client_id,
        "started": int(time.time()),
    }
    return url, pending


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in, from the validated ID token."""

    subject: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def email(self) -> str | None:
        """The e-mail address when the provider vouches for it: `email_verified` true, or
        Microsoft Entra ID's `xms_edov` (the address's domain is the tenant's own)."""
        email = self.claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            return None
        if self.claims.get("email_verified") is True or self.claims.get("xms_edov") is True:
            return email.strip().lower()
        return None

    @property
    def name(self) -> str:
        name = self.claims.get("name")
        return " ".join(name.split())[:200] if isinstance(name, str) else ""


def check_callback(pending: Any, params: Mapping[str, str]) -> dict[str, Any]:
    """The pending sign-in this answer belongs to, or SigninFailed: the provider's error
    (which signs nobody in, so it is said even without a matching state), no sign-in
    started in this browser, another one's state, or one that took too long."""
    if error := params.get("error"):
        reason = Reason.CANCELLED if error == "access_denied" else Reason.REFUSED
        raise SigninFailed(reason, f"provider error {error[:60]!r}")
    if not isinstance(pending, dict) or not isinstance(pending.get("state"), str):
        raise SigninFailed(Reason.STATE, "no sign-in under way in this session")
    state = params.get("state", "")
    if not hmac.compare_digest(state.encode(), pending["state"].encode()):
        raise SigninFailed(Reason.STATE, "state does not match")
    if time.time() - int(pending.get("started", 0)) > PENDING_SECONDS:
        raise SigninFailed(Reason.STATE, "the sign-in took too long")
    if not params.get("code"):
        raise SigninFailed(Reason.REFUSED, "no code")
    return pending


async def finish(
    http: GuardedClient,
    provider: Provider,
    pending: Mapping[str, Any],
    code: str,
    redirect_uri: str,
) -> Identity:
    """Redeems the code (with the PKCE verifier) and validates the ID token."""
    if pending.get("issuer") != provider.issuer or pending.get("client_id") != provider.client_id:
        raise SigninFailed(Reason.STATE, "the provider was changed during the sign-in")
    metadata = await discover(http, provider.issuer)
    tokens = await _redeem(http, provider, metadata, code, str(pending["verifier"]), redirect_uri)
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise SigninFailed(Reason.INVALID_TOKEN, "no id_token in the token answer")
    checks: dict[str, Any] = {
        "issuer": str(metadata["issuer"]),
        "client_id": provider.client_id,
        "nonce": str(pending["nonce"]),
        "access_token": tokens.get("access_token"),
        "algorithms": _algorithms(metadata),
    }
    try:
        claims = validate_id_token(id_token, await fetch_keys(http, metadata), **checks)
    except SigninFailed as failure:
        if failure.reason is not Reason.SIGNATURE:
            raise
        # Perhaps signed by a key the provider added since we kept its keys: once more
        # with the keys it publishes now.
        claims = validate_id_token(id_token, await fetch_keys(http, metadata, fresh=True), **checks)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise SigninFailed(Reason.INVALID_TOKEN, "no subject")
    return Identity(subject, claims)


async def _redeem(
    http: GuardedClient,
    provider: Provider,
    metadata: Mapping[str, Any],
    code: str,
    verifier: str,
    redirect_uri: str,
) -> dict[str, Any]:
    methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    method = "client_secret_post" if "client_secret_basic" not in methods else None
    body = prepare_token_request(
        "authorization_code", code=code, redirect_uri=redirect_uri, code_verifier=verifier
    )
    url, headers, body = ClientAuth(provider.client_id, provider.client_secret, method).prepare(
        "POST",
        str(metadata["token_endpoint"]),
        {"Content-Type": "application/x-www-form-urlencoded"},
        body,
    )
    status, data = await _fetch_json(http, "POST", url, body=body.encode(), headers=headers)
    if status != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        raise SigninFailed(Reason.REFUSED, f"token endpoint answered {status} {error!r}")
    return data


def validate_id_token(
    id_token: str,
    keys: KeySet,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    access_token: Any = None,
    algorithms: list[str] | None = None,
) -> CodeIDToken:
    """The token's claims once its signature (joserfc, against the provider's keys) and
    its claims (authlib's CodeIDToken: iss, aud, exp, iat, nonce, azp, at_hash) hold."""
    try:
        token = jwt.decode(
            id_token,
            keys,
            registry=JWSRegistry(algorithms=algorithms or ["RS256"], strict_check_header=False),
        )
    except (BadSignatureError, InvalidKeyIdError, MissingKeyError) as exc:
        raise SigninFailed(Reason.SIGNATURE, type(exc).__name__) from exc
    except (DecodeError, JoseError, ValueError) as exc:
        raise SigninFailed(Reason.INVALID_TOKEN, type(exc).__name__) from exc
    claims = CodeIDToken(
        token.claims,
        token.header,
        {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
        },
        {
            "nonce": nonce,
            "client_id": client_id,
            **({"access_token": access_token} if isinstance(access_token, str) else {}),
        },
    )
    try:
        claims.validate(leeway=LEEWAY)
    except ExpiredTokenError as exc:
        raise SigninFailed(Reason.EXPIRED, "exp is past") from exc
    except ClaimError as exc:
        reason = {
            "aud": Reason.AUDIENCE,
            "azp": Reason.AUDIENCE,
            "iss": Reason.ISSUER,
            "nonce": Reason.NONCE,
            "exp": Reason.EXPIRED,
        }.get(exc.claim, Reason.INVALID_TOKEN)
        raise SigninFailed(reason, f"claim {exc.claim!r}: {type(exc).__name__}") from exc
    except JoseError as exc:
        raise SigninFailed(Reason.INVALID_TOKEN, type(exc).__name__) from exc
    return claims


# -- who signed in ----------------------------------------------------------------------------


def issuer_tag(issuer: str) -> str:
    return hashlib.sha256(issuer.rstrip("/").encode()).hexdigest()[:12]


def subject_key(issuer: str, subject: str) -> str:
    """What User.oidc_subject stores: the subject, scoped to its issuer (two providers may
    hand out the same subject). Long subjects are hashed to fit the column."""
    key = f"{issuer_tag(issuer)}:{subject}"
    if len(key) <= 255:
        return key
    return f"{issuer_tag(issuer)}#{hashlib.sha256(subject.encode()).hexdigest()}"


def mapped_role(provider: Provider, claims: Mapping[str, Any]) -> Role | None:
    """The highest role the role claim's values map to; the default role when the mapping
    is configured and none of the person's values is in it; None without a mapping."""
    if not provider.role_claim or not provider.role_map:
        return None
    raw = claims.get(provider.role_claim)
    values = raw if isinstance(raw, list) else [raw] if raw is not None else []
    roles = [provider.role_map[str(v)] for v in values if str(v) in provider.role_map]
    if not roles:
        return provider.default_role
    return max(roles, key=lambda role: _RANK[role])


_RANK = {Role.READER: 1, Role.ACCOUNTANT: 2, Role.ADMINISTRATOR: 3}


async def sign_in(db: AsyncSession, provider: Provider, identity: Identity, address: str) -> User:
    """The person this identity is, found, linked or created, with the role the claim maps
    to; committed with the `signin` record. SigninFailed when there is no such person here
    (nothing is written then; the caller records the failure)."""
    try:
        return await _sign_in(db, provider, identity, address)
    except IntegrityError:
        # Two first sign-ins of one person at once (two tabs): the other linked or created
        # the person first, so this one finds them by subject now.
        await db.rollback()
        return await _sign_in(db, provider, identity, address)


async def _sign_in(db: AsyncSession, provider: Provider, identity: Identity, address: str) -> User:
    from services import invitations  # services/invitations.py imports the auth module

    key = subject_key(provider.issuer, identity.subject)
    role = mapped_role(provider, identity.claims)
    user = (await db.exec(select(User).where(col(User.oidc_subject) == key))).first()
    how = "subject"
    if user is None:
        user, how = await _first_sign_in(db, provider, identity, key, role, address, invitations)
    if user.office_id != provider.office_id:
        raise SigninFailed(Reason.NOT_ALLOWED, "subject of another office", who=user.email)
    if not user.active:
        raise SigninFailed(Reason.DEACTIVATED, "deactivated", who=user.email)
    assert user.id is not None
    actor = Actor(provider.office_id, user.email, user_id=user.id, address=address)
    if role is not None and role.value != user.role:
        await _apply_role(db, provider, user, role, actor)
    user.last_login_at = utcnow()
    audit.record(db, actor, "signin", method="oidc", provider=provider.display_name)
    await db.commit()
    await db.refresh(user)
    log.info("signed in through %s: account=%r how=%s", provider.display_name, user.email, how)
    return user


async def _first_sign_in(
    db: AsyncSession,
    provider: Provider,
    identity: Identity,
    key: str,
    role: Role | None,
    address: str,
    invitations: Any,
) -> tuple[User, str]:
    email = identity.email
    if email is None:
        raise SigninFailed(Reason.NO_EMAIL, "no verified e-mail address")
    user = (await db.exec(select(User).where(col(User.email) == email))).first()
    if user is not None:
        if user.office_id != provider.office_id:
            raise SigninFailed(Reason.UNKNOWN_USER, "e-mail of another office", who=email)
        if user.oidc_subject and user.oidc_subject.startswith(issuer_tag(provider.issuer)):
            # Linked to another person at this provider: an address moved between people.
            raise SigninFailed(Reason.NOT_ALLOWED, "e-mail linked to another subject", who=email)
        user.oidc_subject = key
        assert user.id is not None
        linked_by = Actor(provider.office_id, user.email, user_id=user.id, address=address)
        audit.record(db, linked_by, "user.linked", user.email, provider=provider.display_name)
        return user, "e-mail"
    invitation = await invitations.pending_invitation_for_email(db, provider.office_id, email)
    if invitation is not None:
        try:
            joined: User = await invitations.accept_invitation_via_sso(
                db, invitation, subject=key, name=identity.name, address=address
            )
        except invitations.LinkUnusable as exc:
            raise SigninFailed(
                Reason.UNKNOWN_USER, "invitation taken meanwhile", who=email
            ) from exc
        return joined, "invitation"
    if not provider.create_users:
        raise SigninFailed(Reason.UNKNOWN_USER, "no such person", who=email)
    created = User(
        office_id=provider.office_id,
        email=email,
        name=identity.name,
        password_hash="",
        role=(role or provider.default_role).value,
        oidc_subject=key,
    )
    db.add(created)
    await db.flush()
    assert created.id is not None
    actor = Actor(provider.office_id, email, user_id=created.id, address=address)
    audit.record(
        db,
        actor,
        "user.joined",
        email,
        role=Role(created.role).norwegian,
        via="identitetsleverandør (opprettet ved første innlogging)",
    )
    return created, "created"


async def _apply_role(
    db: AsyncSession, provider: Provider, user: User, role: Role, actor: Actor
) -> None:
    """The role the claim maps to, unless that would leave the office without an active
    administrator (kept then, with a warning in the log)."""
    before = Role(user.role)
    assert user.id is not None
    # Counted under the office's lock, as Innstillinger → Brukere counts (services/users.py).
    if before == Role.ADMINISTRATOR and not await users.other_administrators(
        db, provider.office_id, user.id
    ):
        log.warning("role claim would demote the last administrator %r: kept", user.email)
        return
    user.role = role.value
    audit.record(
        db,
        actor,
        "user.role",
        user.email,
        before=before.norwegian,
        after=role.norwegian,
        via=f"rollekobling fra {provider.display_name}",
    )


async def record_failure(
    db: AsyncSession, office_id: int, failure: SigninFailed, address: str
) -> None:
    """`signin.failed` in the office's log, with the reason (never a token's contents), by
    nobody known: the account the provider named (if any) is its target."""
    await db.rollback()
    audit.record(
        db,
        audit.attempt_actor(office_id, failure.who, address),
        "signin.failed",
        failure.who,
        method="oidc",
        reason=failure.reason.message,
        code=failure.reason.code,
    )
    await db.commit()
