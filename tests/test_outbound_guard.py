"""Outbound requests reach only the public internet: notification URLs that point inside are
refused when saved, and refused again when connecting, with a real listener on loopback
showing that no connection arrives.

DNS is the one thing faked (`dns` fixture): it lies outside the machine. Listeners, the
connector and the database are real.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest
from litestar.testing import AsyncTestClient
from markupsafe import escape

from services import notifications
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.notifications import NotificationWorker
from services.outbound_guard import (
    REFUSED,
    UNREACHABLE,
    AddressRefused,
    GuardedClient,
    GuardedConnector,
    OutboundPolicy,
)
from services.settings import Settings
from tests import outbound_support
from tests.conftest import add_user, htmx, login, query
from tests.outbound_support import FakeDns, listening

pytestmark = pytest.mark.anyio

dns = outbound_support.dns

OWN = "Adressen peker til denne tjenesten selv"


@pytest.fixture
def strict(settings: Settings) -> Settings:
    """Production's rules: the tests' settings allow private addresses, production does not."""
    return dataclasses.replace(settings, outbound_allow_private=False)


@pytest.fixture
async def strict_client(strict: Settings) -> AsyncIterator[AsyncTestClient]:
    from app import create_app

    await add_user(strict, "regnskap@kontor-p.no", "Kontor P AS")
    async with AsyncTestClient(create_app(strict)) as test_client:
        await login(test_client, "regnskap@kontor-p.no")
        yield test_client


async def save(client: AsyncTestClient, url: str):  # type: ignore[no-untyped-def]
    await client.get("/innstillinger/varsler")
    return await client.post(
        "/innstillinger/varsler", data={"url": url, "enabled": "on"}, headers=htmx(client)
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("https://169.254.169.254/latest/meta-data/", REFUSED, id="cloud-metadata"),
        pytest.param("https://10.0.0.5/", REFUSED, id="private"),
        pytest.param("https://[fd00::1]/", REFUSED, id="unique-local"),
        pytest.param("https://metadata.google.internal/", REFUSED, id="internal-name"),
        pytest.param("http://127.0.0.1:5432/", "https://", id="postgres-port-over-http"),
        pytest.param("http://[::1]:8000/", "https://", id="ipv6-loopback-over-http"),
        pytest.param("https://[::ffff:127.0.0.1]/", REFUSED, id="ipv4-mapped-loopback"),
        pytest.param("https://100.64.0.1/", REFUSED, id="carrier-grade-nat"),
        pytest.param("https://example.com:22/", "Porten må være 443 eller 8443", id="ssh-port"),
        pytest.param(
            "https://hooks.kontoret.no/erp\r\nX-Injected: 1", "linjeskift", id="crlf-injection"
        ),
        pytest.param("https://hooks.kontoret.no/erp\t", "tabulator", id="tab"),
        pytest.param("https://hooks.kontoret.no/e rp", "mellomrom", id="space"),
        pytest.param("https://hooks.kontoret.no/\x00", "kontrolltegn", id="nul"),
        pytest.param("https://127.1/", REFUSED, id="legacy-ipv4-form"),
        pytest.param("https://[64:ff9b::a9fe:a9fe]/", REFUSED, id="nat64-of-metadata"),
        pytest.param("https://[2002:a00:5::]/", REFUSED, id="6to4-of-private"),
        pytest.param("https://localhost/", REFUSED, id="localhost"),
        pytest.param("https://intranett/", REFUSED, id="single-label"),
        pytest.param("https://hooks.kontoret.no:8080/", "Porten", id="port-off-the-list"),
    ],
)
async def test_forbidden_urls_are_refused_when_saved(
    strict_client: AsyncTestClient, strict: Settings, url: str, message: str
) -> None:
    response = await save(strict_client, url)
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text
    assert str(escape(message)) in response.text
    assert await query(strict, "select id from notification_endpoint") == []


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.kontoret.no/erp",
        "https://hooks.kontoret.no:8443/erp?kilde=erp",
        "https://blåbær.no/varsler",
        " https://hooks.kontoret.no/erp ",  # pasted with spaces around
    ],
)
async def test_public_https_urls_are_saved(
    strict_client: AsyncTestClient, strict: Settings, url: str
) -> None:
    response = await save(strict_client, url)
    assert response.status_code == 200, response.text
    assert await query(strict, "select url from notification_endpoint") == [(url.strip(),)]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/tripletex/_sim/companies/1/vouchers",
        "http://localhost:8000/tripletex/_sim/companies/1/vouchers",
        "http://[::1]:8000/",
        "http://0.0.0.0:8000/",
    ],
)
async def test_the_apps_own_port_is_refused_when_private_addresses_are_allowed(
    client: AsyncTestClient, settings: Settings, url: str
) -> None:
    """Demo mode: a second office aimed its webhook at the simulator's control API on this
    app's own port and booked a voucher in the first office's client."""
    assert settings.outbound_allow_private and settings.port == 8000
    response = await save(client, url)
    assert response.status_code == 422
    assert OWN in response.text
    assert await query(settings, "select id from notification_endpoint") == []


# -- when connecting ----------------------------------------------------------------------


async def _test_event(settings: Settings) -> int:
    """The office's webhook gets a test event; returns the delivery's id."""
    engine = create_engine(settings.database_url)
    async with create_session_factory(engine)() as db:
        ((office_id,),) = await query(settings, "select office_id from notification_endpoint")
        endpoint = await notifications.get_endpoint(db, office_id)
        assert endpoint is not None
        delivery_id = await notifications.queue_test_event(db, endpoint)
    await engine.dispose()
    return delivery_id


async def _deliver(settings: Settings, policy: OutboundPolicy, delivery_id: int) -> bool:
    engine = create_engine(settings.database_url)
    try:
        async with GuardedClient(policy) as http:
            worker = NotificationWorker(
                create_session_factory(engine), KeyVault(settings.encryption_keys), http
            )
            return await worker.deliver(delivery_id)
    finally:
        await engine.dispose()


async def test_a_name_saved_while_allowed_that_resolves_to_loopback_is_refused_when_connecting(
    client: AsyncTestClient, settings: Settings, dns: FakeDns
) -> None:
    with listening() as listener:
        dns.answers["hooks.kontoret.example"] = ["127.0.0.1"]
        url = f"https://hooks.kontoret.example:{listener.port}/erp"
        assert (await save(client, url)).status_code == 200  # saved while allowed
        delivery_id = await _test_event(settings)
        # Production's rules, with the listener's port allowed: only the address can refuse.
        production = OutboundPolicy(allowed_ports=frozenset({443, 8443, listener.port}))

        assert not await _deliver(settings, production, delivery_id)

        assert listener.accepted == 0
        assert await query(settings, "select attempts, last_error from notification_delivery") == [
            (1, REFUSED)
        ]
        assert await query(settings, "select status_code, error from notification_attempt") == [
            (None, REFUSED)
        ]
        log = (await client.get("/innstillinger/varsler/logg", headers=htmx(client))).text
        assert REFUSED in log

        # The listener is real: allowed, the same delivery does connect, to the address
        # checked, looked up once (its TLS handshake then fails: a plain socket).
        lookups = dns.lookups["hooks.kontoret.example"]
        assert not await _deliver(settings, OutboundPolicy.from_settings(settings), delivery_id)
        assert listener.accepted == 1
        assert dns.lookups["hooks.kontoret.example"] == lookups + 1
        assert (await query(settings, "select last_error from notification_delivery")) == [
            (UNREACHABLE,)
        ]


@pytest.mark.parametrize(
    ("host", "answers"),
    [
        pytest.param("127.0.0.1", None, id="literal-loopback"),
        pytest.param("[::ffff:127.0.0.1]", None, id="literal-ipv4-mapped"),
        pytest.param("0x7f.1", None, id="legacy-hex-form"),
        pytest.param("hooks.kontoret.example", ["127.0.0.1"], id="name-to-loopback"),
        pytest.param(
            "hooks.kontoret.example", ["93.184.215.14", "127.0.0.1"], id="one-bad-address-of-two"
        ),
        pytest.param("hooks.kontoret.example", ["::ffff:127.0.0.1"], id="name-to-ipv4-mapped"),
    ],
)
async def test_the_connector_refuses_every_non_public_address_before_connecting(
    dns: FakeDns, host: str, answers: list[str] | None
) -> None:
    """The connector alone, without the check a URL gets when saved: literal IPs too."""
    with listening() as listener:
        if answers:
            dns.answers[host] = answers
        policy = OutboundPolicy(allowed_ports=frozenset({listener.port}))
        async with aiohttp.ClientSession(connector=GuardedConnector(policy)) as session:
            with pytest.raises(AddressRefused):
                await session.post(f"https://{host}:{listener.port}/erp", data=b"{}")
        assert listener.accepted == 0


async def test_the_apps_own_port_is_refused_when_connecting_even_when_allowed(
    settings: Settings, client: AsyncTestClient, dns: FakeDns
) -> None:
    """A name that resolves to this machine, at the port this app listens on (here a listener
    standing in for it), stored before this rule existed."""
    with listening() as app_itself:
        dns.answers["erp.kontoret.lan"] = ["127.0.0.1"]
        assert (await save(client, "https://hooks.kontoret.no/erp")).status_code == 200
        for url in (
            f"http://erp.kontoret.lan:{app_itself.port}/tripletex/_sim/companies/1/vouchers",
            f"http://127.0.0.1:{app_itself.port}/tripletex/_sim/companies/1/vouchers",
        ):
            await _store_url(settings, url)
            delivery_id = await _test_event(settings)
            policy = dataclasses.replace(
                OutboundPolicy.from_settings(settings), own_port=app_itself.port
            )
            assert policy.allow_private
            assert not await _deliver(settings, policy, delivery_id)
        assert app_itself.accepted == 0
        errors = await query(settings, "select error from notification_attempt order by id")
        assert errors == [(REFUSED,), (f"{OWN}; bruk mottakerens adresse.",)]


async def _store_url(settings: Settings, url: str) -> None:
    """As if saved before today's rules (rows stay as they were)."""
    from sqlalchemy import text

    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(text("update notification_endpoint set url = :url"), {"url": url})
    await engine.dispose()
