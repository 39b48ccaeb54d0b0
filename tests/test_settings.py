import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from services.settings import Settings, SettingsError

pytestmark = pytest.mark.database_agnostic

PRODUCTION = {
    "SECRET_KEY": "s" * 40,
    "ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "TRIPLETEX_CONSUMER_TOKEN": "consumer-abc",
}


def test_production_settings_are_read_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env({**PRODUCTION, "DATA_DIR": str(tmp_path), "PORT": "9001"})
    assert not settings.demo
    assert settings.port == 9001
    assert settings.system("tripletex").base_url == "https://tripletex.no/v2"
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'erp.sqlite3'}"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ENCRYPTION_KEY", "TRIPLETEX_CONSUMER_TOKEN"])
def test_production_refuses_to_start_without(missing: str, tmp_path: Path) -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != missing} | {"DATA_DIR": str(tmp_path)}
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env)


def test_production_refuses_the_demo_consumer_token(tmp_path: Path) -> None:
    env = PRODUCTION | {
        "TRIPLETEX_CONSUMER_TOKEN": "demo-consumer-token",
        "DATA_DIR": str(tmp_path),
    }
    with pytest.raises(SettingsError, match="TRIPLETEX_CONSUMER_TOKEN"):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "åtte"),
        ("ENCRYPTION_KEY", "not-a-fernet-key"),
        ("DATABASE_URL", "mysql://x/y"),
        ("PUBLIC_BASE_URL", "http://intern.local"),
        ("LOG_FORMAT", "xml"),
        ("SYNC_CONCURRENCY", "0"),
        ("SYNC_YEARS", "to"),
        ("OUTBOUND_ALLOWED_PORTS", "443,https"),
        ("OUTBOUND_ALLOWED_PORTS", "70000"),
        ("OUTBOUND_ALLOWED_PORTS", ","),
        ("OUTBOUND_ALLOW_PRIVATE", "kanskje"),
    ],
)
def test_bad_values_are_named(name: str, value: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(PRODUCTION | {name: value, "DATA_DIR": str(tmp_path)})


def test_outbound_requests_reach_only_public_https_by_default(tmp_path: Path) -> None:
    settings = Settings.from_env(PRODUCTION | {"DATA_DIR": str(tmp_path)})
    assert settings.outbound_allowed_ports == (443, 8443)
    assert not settings.outbound_allow_private
    opened = Settings.from_env(
        PRODUCTION
        | {
            "DATA_DIR": str(tmp_path),
            "OUTBOUND_ALLOWED_PORTS": "443, 9443",
            "OUTBOUND_ALLOW_PRIVATE": "true",
        }
    )
    assert opened.outbound_allowed_ports == (443, 9443)
    assert opened.outbound_allow_private


def test_demo_allows_private_outbound_addresses_unless_told_otherwise(tmp_path: Path) -> None:
    assert Settings.from_env({"DATA_DIR": str(tmp_path)}, demo=True).outbound_allow_private
    told = {"DATA_DIR": str(tmp_path), "OUTBOUND_ALLOW_PRIVATE": "false"}
    assert not Settings.from_env(told, demo=True).outbound_allow_private


def test_demo_generates_secrets_readable_only_by_the_owner(tmp_path: Path) -> None:
    first = Settings.from_env({"DATA_DIR": str(tmp_path)}, demo=True)
    again = Settings.from_env({"DATA_DIR": str(tmp_path)}, demo=True)
    secrets_file = tmp_path / "demo-secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert first.encryption_keys == again.encryption_keys
    assert first.system("tripletex").base_url == "http://127.0.0.1:8000/tripletex/v2"


def test_postgres_url_gets_the_async_driver(tmp_path: Path) -> None:
    env = PRODUCTION | {"DATABASE_URL": "postgresql://u@db/erp", "DATA_DIR": str(tmp_path)}
    assert Settings.from_env(env).database_url == "postgresql+asyncpg://u@db/erp"
