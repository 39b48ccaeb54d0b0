"""Outbound requests reach only the public internet: notification URLs that point inside are
refused when saved, and refused again when connecting, with a real listener on loopback
showing that no connection arrives.

DNS is the one thing faked (`dns` fixture): it lies outside the machine. Listeners, the
connector and the database are real.
"""

from __future__ import annotations

import base64
import dataclasses
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from anyio import fail_after
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
from tests.outbound_support import FakeDns, Listener, listening, read_request

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
        # Judged as sent: IDNA maps these to metadata.google.internal, foo.local, x.localhost.
        pytest.param("https://metadata.google.ⓘnternal/", REFUSED, id="idna-circled-internal"),
        pytest.param("https://foo.ⓛocal/", REFUSED, id="idna-circled-local"),
        pytest.param("https://x.ｌｏｃａｌｈｏｓｔ/", REFUSED, id="idna-fullwidth-localhost"),
        pytest.param("https://xn--zz.no/", "ikke en gyldig URL", id="idna-invalid-punycode"),
        pytest.param("https://⒈.no/", "ugyldig vertsnavn", id="idna-empty-label"),
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
        "http://ｌｏｃａｌｈｏｓｔ:8000/tripletex/_sim/companies/1/vouchers",  # fullwidth
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


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param("https://hooks.kontoret.no:8080/", "Porten må være 443 eller 8443", id="name"),
        pytest.param(
            "https://93.184.215.14:8080/", "Porten må være 443 eller 8443", id="public-ip"
        ),
        pytest.param("http://hooks.kontoret.no/", "https://", id="plain-http"),
    ],
)
async def test_allowing_private_addresses_leaves_public_hosts_on_https_and_the_allowed_ports(
    client: AsyncTestClient, settings: Settings, url: str, message: str
) -> None:
    """OUTBOUND_ALLOW_PRIVATE is for a receiver inside the operator's network, not a licence
    to reach any port on the internet."""
    assert settings.outbound_allow_private
    response = await save(client, url)
    assert response.status_code == 422
    assert str(escape(message)) in response.text
    assert await query(settings, "select id from notification_endpoint") == []


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:8080/erp", "http://hooks.kontoret.lan:8080/erp", "http://127.0.0.1:9/"]
)
async def test_allowing_private_addresses_lets_them_through_on_any_port_over_http(
    client: AsyncTestClient, settings: Settings, url: str
) -> None:
    assert (await save(client, url)).status_code == 200
    assert await query(settings, "select url from notification_endpoint") == [(url,)]


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
        assert (await save(client, "https://hooks.kontoret.example/erp")).status_code == 200
        # A name that looks public keeps the port allow-list even while private addresses
        # are allowed: as if saved with the listener's port on it.
        await _store_url(settings, f"https://hooks.kontoret.example:{listener.port}/erp")
        delivery_id = await _test_event(settings)
        # Production's rules, with the listener's port allowed: only the address can refuse.
        ports = frozenset({443, 8443, listener.port})
        production = OutboundPolicy(allowed_ports=ports)

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
        allowed = dataclasses.replace(OutboundPolicy.from_settings(settings), allowed_ports=ports)
        assert not await _deliver(settings, allowed, delivery_id)
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


@pytest.mark.database_agnostic
@pytest.mark.parametrize(
    ("host", "answers"),
    [
        pytest.param("93.184.215.14", None, id="literal-public"),
        pytest.param("hooks.kontoret.example", ["93.184.215.14"], id="name-to-public"),
    ],
)
async def test_a_public_address_off_the_allowed_ports_is_refused_even_when_private_are_allowed(
    dns: FakeDns, host: str, answers: list[str] | None
) -> None:
    """Refused before connecting (the address is on the internet: were a connection tried,
    this would time out or fail to connect instead)."""
    if answers:
        dns.answers[host] = answers
    policy = OutboundPolicy(allow_private=True)
    async with aiohttp.ClientSession(connector=GuardedConnector(policy)) as session:
        with pytest.raises(AddressRefused), fail_after(5):
            await session.post(f"https://{host}:8080/erp", data=b"{}")


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


async def test_the_operators_netrc_credentials_never_reach_a_receiver(
    client: AsyncTestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `default` entry in the operator's netrc matches every host: aiohttp's trust_env
    would send it as Basic auth to whatever URL an office saves."""
    netrc = tmp_path / "netrc"
    netrc.write_text("default login operator password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    heads: list[bytes] = []

    def record(conn: socket.socket, _listener: Listener) -> None:
        heads.append(read_request(conn))
        conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    with listening(record) as receiver:
        assert (await save(client, f"http://127.0.0.1:{receiver.port}/hooks")).status_code == 200
        response = await client.post("/innstillinger/varsler/test", headers=htmx(client))
    assert "Testvarselet ble levert" in response.text
    (head,) = heads
    assert head.startswith(b"POST /hooks ")
    assert b"authorization:" not in head.lower()
    assert base64.b64encode(b"operator:s3cret") not in head


async def _store_url(settings: Settings, url: str) -> None:
    """As if saved before today's rules (rows stay as they were)."""
    from sqlalchemy import text

    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(text("update notification_endpoint set url = :url"), {"url": url})
    await engine.dispose()
