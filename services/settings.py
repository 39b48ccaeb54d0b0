"""Configuration read once from the environment (and an optional `.env`), validated at start."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

from cryptography.fernet import Fernet

from services.connectors.base import SystemSettings, SystemSettingsFactory


@dataclass(frozen=True)
class SyncConfig:
    enabled: bool = True  # the scheduler runs in this process
    tick_seconds: float = 5.0
    concurrency: int = 8  # clients synced at once by one process
    per_key: int = 4  # of those, at most this many through one key (one rate limit)
    poll_minutes: int = 10  # re-check recent months of every active client this often
    years: int = 2  # accounting years kept: the current and the previous

    @classmethod
    def from_env(cls, env: dict[str, str]) -> SyncConfig:
        config = cls(
            enabled=not env.get("SYNC_ENABLED") or _flag(env, "SYNC_ENABLED"),
            tick_seconds=float(_int(env, "SYNC_TICK_SECONDS", 5)),
            concurrency=_int(env, "SYNC_CONCURRENCY", 8),
            per_key=_int(env, "SYNC_CONCURRENCY_PER_KEY", 4),
            poll_minutes=_int(env, "SYNC_POLL_MINUTES", 10),
            years=_int(env, "SYNC_YEARS", 2),
        )
        for name, value in (
            ("SYNC_TICK_SECONDS", config.tick_seconds),
            ("SYNC_CONCURRENCY", config.concurrency),
            ("SYNC_CONCURRENCY_PER_KEY", config.per_key),
            ("SYNC_POLL_MINUTES", config.poll_minutes),
            ("SYNC_YEARS", config.years),
        ):
            if value < 1:
                raise SettingsError(f"{name} must be at least 1")
        return config


SMTP_SECURITY = ("starttls", "tls", "off")
SMTP_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "off": 25}


@dataclass(frozen=True)
class SmtpConfig:
    """The mail server e-mail alerts go through (services/notifications/mailer.py); without
    SMTP_HOST no e-mail is sent. The password is never shown: not in repr, logs or pages."""

    host: str | None = None  # None: e-mail is not set up here
    port: int = 587
    security: str = "starttls"  # starttls (upgrade on connect), tls (TLS from the start), off
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = ""  # From:, e.g. "ERP-integrasjon <varsel@kontoret.no>"

    @property
    def configured(self) -> bool:
        return self.host is not None

    @classmethod
    def from_env(cls, env: dict[str, str]) -> SmtpConfig:
        host = env.get("SMTP_HOST", "").strip()
        others = [
            name
            for name in ("SMTP_PORT", "SMTP_TLS", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_FROM")
            if env.get(name, "").strip()
        ]
        if not host:
            if others:
                raise SettingsError(
                    f"{others[0]} is set but SMTP_HOST is not: set SMTP_HOST to send e-mail "
                    "alerts, or remove the SMTP_ variables"
                )
            return cls()
        if any(c.isspace() or c in "/:@" for c in host):
            raise SettingsError(f"SMTP_HOST must be a host name or address, not {host!r}")
        security = env.get("SMTP_TLS", "").strip().lower() or "starttls"
        if security not in SMTP_SECURITY:
            raise SettingsError(f"SMTP_TLS must be starttls, tls or off, not {security!r}")
        port = _int(env, "SMTP_PORT", SMTP_DEFAULT_PORTS[security])
        if not 1 <= port <= 65535:
            raise SettingsError(f"SMTP_PORT must be a port number (1-65535), not {port}")
        username = env.get("SMTP_USERNAME", "").strip() or None
        password = env.get("SMTP_PASSWORD", "") or None
        if (username is None) != (password is None):
            raise SettingsError("SMTP_USERNAME and SMTP_PASSWORD must be set together")
        if username is not None and security == "off":
            raise SettingsError(
                "SMTP_USERNAME needs SMTP_TLS=starttls or tls: the password is never sent "
                "unencrypted"
            )
        sender = env.get("SMTP_FROM", "").strip()
        if not sender:
            raise SettingsError("SMTP_FROM is required with SMTP_HOST (the alerts' sender)")
        _, address = parseaddr(sender)
        local, at, domain = address.rpartition("@")
        if not at or not local or "." not in domain or any(c in sender for c in "\r\n"):
            raise SettingsError(
                f"SMTP_FROM must be an e-mail address (optionally 'Name <address>'), not {sender!r}"
            )
        return cls(
            host=host,
            port=port,
            security=security,
            username=username,
            password=password,
            sender=sender,
        )


@dataclass(frozen=True)
class OidcConfig:
    """An office's OpenID Provider set by the operator (OIDC_*), for services/oidc.py.

    It wins over what an administrator saves under Innstillinger → Pålogging for the provider
    itself (issuer, client id and secret, the button's name), which the page then shows
    without letting them be changed; the rules there (creating people, roles, requiring
    single sign-on or a second factor) stay the administrator's. It applies to the office
    named by OIDC_OFFICE, or, unset, to the only office there is. The secret is never shown."""

    issuer: str | None = None  # None: not set by the operator
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    display_name: str = ""  # "Logg inn med <this>"
    office: str = ""  # the office's name; empty: the only office in the database

    @property
    def configured(self) -> bool:
        return self.issuer is not None

    @classmethod
    def from_env(cls, env: dict[str, str], *, allow_http: bool) -> OidcConfig:
        issuer = env.get("OIDC_ISSUER", "").strip()
        names = ("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_DISPLAY_NAME", "OIDC_OFFICE")
        if not issuer:
            if others := [name for name in names if env.get(name, "").strip()]:
                raise SettingsError(
                    f"{others[0]} is set but OIDC_ISSUER is not: set OIDC_ISSUER for single "
                    "sign-on, or remove the OIDC_ variables"
                )
            return cls()
        if not issuer.startswith("https://") and not (allow_http and issuer.startswith("http://")):
            raise SettingsError(f"OIDC_ISSUER must be an https:// URL, not {issuer!r}")
        client_id = env.get("OIDC_CLIENT_ID", "").strip()
        secret = env.get("OIDC_CLIENT_SECRET", "").strip()
        if not client_id or not secret:
            raise SettingsError("OIDC_ISSUER needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")
        display_name = env.get("OIDC_DISPLAY_NAME", "").strip()
        if len(display_name) > 100:
            raise SettingsError("OIDC_DISPLAY_NAME must be at most 100 characters")
        return cls(
            issuer=issuer,
            client_id=client_id,
            client_secret=secret,
            display_name=display_name or "identitetsleverandøren",
            office=env.get("OIDC_OFFICE", "").strip(),
        )


class SettingsError(ValueError):
    """A configuration variable is missing or wrong; the message names it."""


@dataclass(frozen=True)
class Settings:
    demo: bool
    data_dir: Path
    database_url: str
    secret_key: str
    # Newest first: encrypt with the first, decrypt with any (key rotation).
    encryption_keys: tuple[str, ...]
    host: str = "127.0.0.1"
    port: int = 8000
    secure_cookies: bool = False
    # Requests to addresses users give us (notification URLs): services/outbound_guard.py.
    outbound_allowed_ports: tuple[int, ...] = (443, 8443)
    outbound_allow_private: bool = False  # non-public addresses too, on any port, over http
    # Where the systems can reach our change receiver; None: live sync falls back to polling.
    public_base_url: str | None = None
    log_format: str = "text"  # "json" for log collectors
    # A login ends this long after it began, however active (the idle expiry is 8 hours).
    session_max_hours: int = 12
    sync: SyncConfig = field(default_factory=lambda: SyncConfig())
    smtp: SmtpConfig = field(default_factory=lambda: SmtpConfig())  # e-mail alerts
    oidc: OidcConfig = field(default_factory=lambda: OidcConfig())  # the operator's SSO
    # One settings block per system spoken (services/connectors/registry.py).
    systems: tuple[SystemSettings, ...] = ()

    @classmethod
    def from_env(
        cls,
        env: dict[str, str] | None = None,
        *,
        demo: bool | None = None,
        systems: tuple[SystemSettingsFactory, ...] | None = None,
    ) -> Settings:
        if systems is None:
            from services.connectors.registry import SYSTEMS as systems
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("DATA_DIR", "data")).resolve()
        _load_dotenv(env)
        is_demo = _flag(env, "DEMO") if demo is None else demo
        port = _int(env, "PORT", 8000)
        host = env.get("HOST", "127.0.0.1")
        database_url = env.get("DATABASE_URL") or f"sqlite+aiosqlite:///{data_dir / 'erp.sqlite3'}"
        database_url = _async_database_url(database_url)
        if is_demo:
            demo_secrets = _demo_secrets(data_dir)
            secret_key = env.get("SECRET_KEY") or demo_secrets["secret_key"]
            keys = env.get("ENCRYPTION_KEY") or demo_secrets["encryption_key"]
        else:
            secret_key = _required(env, "SECRET_KEY")
            keys = _required(env, "ENCRYPTION_KEY")
        if len(secret_key) < 32:
            raise SettingsError("SECRET_KEY must be at least 32 characters")
        encryption_keys = tuple(k.strip() for k in keys.split(",") if k.strip())
        for key in encryption_keys:
            try:
                Fernet(key)
            except ValueError as exc:
                raise SettingsError(
                    "ENCRYPTION_KEY must be Fernet keys (urlsafe base64, 32 bytes), "
                    "comma-separated, newest first"
                ) from exc
        public_base_url = env.get("PUBLIC_BASE_URL", "").strip().rstrip("/") or None
        if public_base_url and not public_base_url.startswith("https://") and not is_demo:
            raise SettingsError("PUBLIC_BASE_URL must be an https:// URL the systems can reach")
        if is_demo and public_base_url is None:
            # The demo's simulators run in this process and may call plain HTTP on loopback:
            # the demo shows live sync through webhooks.
            public_base_url = f"http://127.0.0.1:{port}"
        allowed_ports = _ports(env, "OUTBOUND_ALLOWED_PORTS", (443, 8443))
        # The demo's receivers run on this machine; production must ask for it by name.
        allow_private = (
            _flag(env, "OUTBOUND_ALLOW_PRIVATE")
            if env.get("OUTBOUND_ALLOW_PRIVATE", "").strip()
            else is_demo
        )
        log_format = env.get("LOG_FORMAT", "text" if is_demo else "json").strip().lower()
        if log_format not in ("text", "json"):
            raise SettingsError(f"LOG_FORMAT must be text or json, not {log_format!r}")
        session_max_hours = _int(env, "SESSION_MAX_HOURS", 12)
        if session_max_hours < 1:
            raise SettingsError("SESSION_MAX_HOURS must be at least 1")
        return cls(
            demo=is_demo,
            data_dir=data_dir,
            database_url=database_url,
            secret_key=secret_key,
            encryption_keys=encryption_keys,
            host=host,
            port=port,
            secure_cookies=_flag(env, "SECURE_COOKIES"),
            outbound_allowed_ports=allowed_ports,
            outbound_allow_private=allow_private,
            public_base_url=public_base_url,
            log_format=log_format,
            session_max_hours=session_max_hours,
            sync=SyncConfig.from_env(env),
            smtp=SmtpConfig.from_env(env),
            oidc=OidcConfig.from_env(env, allow_http=allow_private),
            systems=tuple(
                block
                for factory in systems
                if (block := factory.from_env(env, demo=is_demo, port=port)) is not None
            ),
        )

    def system(self, name: str) -> SystemSettings:
        """The settings block of one system."""
        for block in self.systems:
            if block.system == name:
                return block
        raise KeyError(f"no settings for the system {name!r}")


def _flag(env: dict[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None


def _ports(env: dict[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    ports = tuple(p.strip() for p in raw.split(",") if p.strip())
    if not ports or not all(p.isascii() and p.isdigit() and 1 <= int(p) <= 65535 for p in ports):
        raise SettingsError(f"{name} must be comma-separated port numbers (1-65535), not {raw!r}")
    return tuple(int(p) for p in ports)


def _required(env: dict[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(f"{name} is required outside demo mode")
    return value


def _async_database_url(url: str) -> str:
    for plain, async_driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return async_driver + url.removeprefix(plain)
    if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
        return url
    raise SettingsError("DATABASE_URL must be a postgresql:// or sqlite:// URL")


def _load_dotenv(env: dict[str, str]) -> None:
    """Fill variables not already set from `.env` in the working directory."""
    path = Path(".env")
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        env.setdefault(name.strip(), value.strip().strip("'\""))


def _demo_secrets(data_dir: Path) -> dict[str, str]:
    """Demo mode keeps generated secrets in DATA_DIR, readable by the owner only."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "demo-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "secret_key": secrets.token_urlsafe(48),
        "encryption_key": Fernet.generate_key().decode(),
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return values
