"""E-mail alerts (Innstillinger → Varsler → E-postvarsler): a real SMTP server on a loopback
port (aiosmtpd) receives what the app sends. A client failing for a day and a refused key
are e-mailed to the office's address with the fix the pages show, at most once a day per
problem; nothing is sent without SMTP settings. Also here: a failed Send testvarsel (the
webhook) is shown red with its reason."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import html
import ipaddress
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from litestar.testing import AsyncTestClient

from models.base import utcnow
from services.connectors.tripletex import TripletexConnector
from services.crypto import KeyVault
from services.db import SessionFactory, create_engine, create_session_factory
from services.notifications import EmailAlerts, Mailer, MailError, running_notifications
from services.notifications.email_alerts import KEY_FIX, send_test
from services.outbound_guard import GuardedClient, OutboundPolicy
from services.settings import Settings, SettingsError, SmtpConfig
from tests import api_support
from tests.conftest import (
    PASSWORD,
    Simulator,
    create_integration,
    csrf,
    free_port,
    htmx,
    login,
    query,
)
from tests.processes import served_in_thread
from tests.sync_support import sync_engine
from tests.test_notifications import Receiver

pytestmark = pytest.mark.anyio

office_b = api_support.office_b

SENDER = "ERP-integrasjon <varsel@erp.example.no>"
BASE_URL = "https://erp.kontoret.no"
OFFICE_ADDRESS = "regnskap@kontor-a.no"
SMTP_PASSWORD = "smtp-passord-som-aldri-vises-9f3k"


@dataclass
class Inbox:
    """What the SMTP server received."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def bodies(self) -> list[str]:
        return [m.get_content() for m in self.messages]


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox


@pytest.fixture(scope="module")
def _smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer(controller.port, inbox)
    finally:
        controller.stop()


@pytest.fixture
def smtp(_smtp_server: SmtpServer) -> SmtpServer:
    _smtp_server.inbox.messages.clear()
    _smtp_server.inbox.recipients.clear()
    return _smtp_server


def smtp_config(port: int, **changes: Any) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, security="off", sender=SENDER, **changes)


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    """The app's settings with SMTP pointing at the test's server, and a public address."""
    return dataclasses.replace(settings, smtp=smtp_config(smtp.port), public_base_url=BASE_URL)


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset


@pytest.fixture
async def factory(settings: Settings) -> AsyncIterator[SessionFactory]:
    engine = create_engine(settings.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def alerts(settings: Settings, factory: SessionFactory, clock: Clock) -> EmailAlerts:
    return EmailAlerts(
        factory,
        Mailer(settings.smtp),
        base_url=settings.public_base_url,
        system_name=lambda system: {"tripletex": "Tripletex"}.get(system, system),
        now=clock,
    )


async def save_address(
    client: AsyncTestClient, address: str = OFFICE_ADDRESS, *, enabled: bool = True
) -> Any:
    data = {"address": address}
    if enabled:
        data["enabled"] = "on"
    return await client.post("/innstillinger/varsler/e-post", data=data, headers=htmx(client))


async def failing_client(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> tuple[int, int, str]:
    """The client that has not given the office API access, switched on and synced once:
    failed (no access). Returns (integration id, client id, client name)."""
    integration_id = await create_integration(client)
    company = simulator.state.company(simulator.state.no_api_access_client_id)
    ((client_id,),) = await query(settings, f"select id from client where erp_id = {company.id}")
    await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "true"},
        headers=htmx(client),
    )
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "failed"
    return integration_id, client_id, company.name


async def rejected_key(client: AsyncTestClient, settings: Settings, simulator: Simulator) -> int:
    """An integration with a client switched on, whose key Tripletex then refuses (the
    client's sync fails with the key rejected); returns the integration's id."""
    integration_id = await create_integration(client)
    ((client_id,),) = await query(settings, "select min(id) from client")
    await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "true"},
        headers=htmx(client),
    )
    simulator.state.revoke_key("demo-regnskapskontor")
    async with sync_engine(settings, simulator) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "failed"
    return integration_id


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# -- the alerts --------------------------------------------------------------------------


async def test_a_client_failing_for_a_day_is_emailed_once_a_day_with_the_fix(
    client: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    smtp: SmtpServer,
    alerts: EmailAlerts,
    clock: Clock,
) -> None:
    assert (await save_address(client)).status_code == 200
    integration_id, client_id, name = await failing_client(client, settings, simulator)
    fix = TripletexConnector.wording.no_api_access

    clock.offset = timedelta(hours=23)  # failing, but not for a day yet
    assert await alerts.run_once() == 0
    assert smtp.inbox.messages == []

    clock.offset = timedelta(hours=24, minutes=1)
    assert await alerts.run_once() == 1
    (message,) = smtp.inbox.messages
    assert smtp.inbox.recipients == [[OFFICE_ADDRESS]]
    assert message["From"] == SENDER and message["To"] == OFFICE_ADDRESS
    assert name in message["Subject"]
    body = message.get_content()
    assert name in body and "Tripletex - Klienter" in body
    assert f"Slik løser du det: {fix}" in body
    assert f"{BASE_URL}/integrasjoner/{integration_id}/klienter/{client_id}/oversikt" in body
    assert "Kontor A AS" in body

    # Again within a day of the e-mail: nothing.
    for offset in (timedelta(hours=24, minutes=2), timedelta(hours=30), timedelta(hours=48)):
        clock.offset = offset
        assert await alerts.run_once() == 0
    assert len(smtp.inbox.messages) == 1

    clock.offset = timedelta(hours=48, minutes=2)  # a day after the e-mail: one more
    assert await alerts.run_once() == 1
    assert len(smtp.inbox.messages) == 2
    assert fix in smtp.inbox.messages[1].get_content()
    assert await alerts.run_once() == 0
    assert len(smtp.inbox.messages) == 2


async def test_a_client_that_synced_again_is_not_emailed(
    client: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    smtp: SmtpServer,
    alerts: EmailAlerts,
    clock: Clock,
) -> None:
    await save_address(client)
    integration_id = await create_integration(client)
    ((client_id,),) = await query(settings, "select min(id) from client")
    await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "true"},
        headers=htmx(client),
    )
    simulator.state.set_faults(error_rate=1.0, error_kinds=["503"])
    async with sync_engine(settings, simulator, http_timeout=1.0) as engine:
        assert await engine.sync_client(client_id, trigger="manual") == "failed"
        simulator.state.set_faults(error_rate=0.0)
        assert await engine.sync_client(client_id, trigger="manual") == "ok"
    clock.offset = timedelta(days=2)
    assert await alerts.run_once() == 0
    assert smtp.inbox.messages == []


async def test_a_rejected_key_is_emailed_at_once_with_the_fix(
    client: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    smtp: SmtpServer,
    alerts: EmailAlerts,
) -> None:
    await save_address(client)
    integration_id = await create_integration(client)
    client_ids = [r[0] for r in await query(settings, "select id from client order by id")][:2]
    for client_id in client_ids:
        await client.post(
            f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
            data={"on": "true"},
            headers=htmx(client),
        )
    simulator.state.revoke_key("demo-regnskapskontor")
    async with sync_engine(settings, simulator) as engine:
        for client_id in client_ids:
            assert await engine.sync_client(client_id, trigger="manual") == "failed"
    assert await query(settings, "select key_status from integration") == [("invalid",)]

    assert await alerts.run_once() == 1
    assert await alerts.run_once() == 0
    (message,) = smtp.inbox.messages  # one problem: the key, not each of its clients
    body = message.get_content()
    assert "Tripletex - Klienter" in message["Subject"]
    assert "Nøkkelen er ugyldig eller utløpt — bruk Endre system" in body
    assert f"Slik løser du det: {KEY_FIX}" in body
    assert re.search(rf"{BASE_URL}/integrasjoner/{integration_id}\r?\n", body)


async def test_each_office_gets_its_own_problems_and_nothing_when_switched_off(
    client: AsyncTestClient,
    office_b: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    smtp: SmtpServer,
    alerts: EmailAlerts,
    clock: Clock,
) -> None:
    await save_address(client)
    await save_address(office_b, "drift@kontor-b.no")
    _, _, name = await failing_client(client, settings, simulator)
    clock.offset = timedelta(days=1, minutes=1)
    assert await alerts.run_once() == 1
    assert smtp.inbox.recipients == [[OFFICE_ADDRESS]]  # office B has no failing client
    assert name in smtp.inbox.messages[0].get_content()

    response = await save_address(client, enabled=False)
    assert "E-postvarsler er slått av." in response.text
    clock.offset = timedelta(days=3)
    assert await alerts.run_once() == 0
    assert len(smtp.inbox.messages) == 1


async def test_a_failed_send_is_tried_again_later_not_lost(
    client: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    factory: SessionFactory,
    smtp: SmtpServer,
    alerts: EmailAlerts,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await save_address(client)
    await failing_client(client, settings, simulator)
    down = EmailAlerts(
        factory, Mailer(smtp_config(free_port()), timeout=2), base_url=BASE_URL, now=clock
    )
    clock.offset = timedelta(days=1, minutes=1)
    with caplog.at_level(logging.WARNING):
        assert await down.run_once() == 0
    assert "e-mail alert not sent" in caplog.text
    clock.offset += timedelta(minutes=5)  # waits a while after a failure...
    assert await alerts.run_once() == 0
    clock.offset += timedelta(minutes=6)  # ...then the working server gets it
    assert await alerts.run_once() == 1
    assert len(smtp.inbox.messages) == 1


async def test_the_background_job_sends_the_alerts(
    client: AsyncTestClient, settings: Settings, simulator: Simulator, smtp: SmtpServer
) -> None:
    await save_address(client)
    await rejected_key(client, settings, simulator)
    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    job = EmailAlerts.from_settings(factory, settings)
    assert job is not None
    job.interval = 0.05
    async with (
        GuardedClient(OutboundPolicy.from_settings(settings)) as http,
        running_notifications(
            factory, KeyVault(settings.encryption_keys), http, enabled=True, alerts=job
        ),
    ):
        deadline = time.monotonic() + 10
        while not smtp.inbox.messages and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # more looks: still one e-mail
    await engine.dispose()
    assert len(smtp.inbox.messages) == 1
    assert KEY_FIX in smtp.inbox.messages[0].get_content()


async def test_without_smtp_nothing_is_sent_and_the_page_says_so(
    client: AsyncTestClient,
    settings: Settings,
    simulator: Simulator,
    factory: SessionFactory,
    smtp: SmtpServer,
) -> None:
    from app import create_app

    unconfigured = dataclasses.replace(settings, smtp=SmtpConfig())
    assert EmailAlerts.from_settings(factory, unconfigured) is None
    async with AsyncTestClient(create_app(unconfigured)) as other:
        await login(other, "regnskap@kontor-a.no", PASSWORD)
        page = text_of((await other.get("/innstillinger/varsler")).text)
        assert "E-post er ikke satt opp på denne serveren, så ingen e-postvarsler sendes." in page
        saved = await save_address(other)
        assert saved.status_code == 200
        assert "ingen e-post sendes før e-post er satt opp" in text_of(saved.text)
        assert "Send test-e-post" not in saved.text
        await rejected_key(other, unconfigured, simulator)
        engine = create_engine(settings.database_url)
        async with (
            GuardedClient(OutboundPolicy.from_settings(unconfigured)) as http,
            running_notifications(
                create_session_factory(engine),
                KeyVault(unconfigured.encryption_keys),
                http,
                enabled=True,
                interval=0.05,
                alerts=EmailAlerts.from_settings(factory, unconfigured),
            ),
        ):
            await asyncio.sleep(0.3)
        await engine.dispose()
    assert smtp.inbox.messages == []
    # With SMTP set up, the same office and problem get their e-mail.
    configured = EmailAlerts.from_settings(factory, settings)
    assert configured is not None and await configured.run_once() == 1
    # The configured app says nothing of the kind, and offers the test e-mail.
    page = text_of((await client.get("/innstillinger/varsler")).text)
    assert "ikke satt opp" not in page and "Send test-e-post" in page


# -- the setting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Fyll inn e-postadressen varslene skal til."),
        ("regnskap", "Dette er ikke en gyldig e-postadresse. Skriv den slik: regnskap@kontoret.no"),
        ("regnskap@kontoret", "Dette er ikke en gyldig e-postadresse."),
        ("regn skap@kontoret.no", "Dette er ikke en gyldig e-postadresse."),
        ("a@kontoret.no b@kontoret.no", "Skriv inn én e-postadresse."),
        ("a@kontoret.no, b@kontoret.no", "Skriv inn én e-postadresse."),
        ("a@b@kontoret.no", "Skriv inn én e-postadresse."),
        ("regnskap@kontoret.no\r\nBcc: x@y.no", "Skriv inn én e-postadresse."),
        ("regnskap@-kontoret.no", "Dette er ikke en gyldig e-postadresse."),
    ],
)
async def test_the_address_is_checked_with_a_norwegian_message(
    client: AsyncTestClient, settings: Settings, typed: str, message: str
) -> None:
    response = await save_address(client, typed)
    assert response.status_code == 422
    assert message in html.unescape(response.text)
    assert 'aria-invalid="true"' in response.text and 'role="alert"' in response.text
    assert response.text.lstrip().startswith('<section id="email-alerts"')
    assert await query(settings, "select address from email_alert_setting") == []


async def test_a_valid_address_is_stored_for_the_office_and_shown(
    client: AsyncTestClient, office_b: AsyncTestClient, settings: Settings
) -> None:
    response = await save_address(client, "  Post@Blåbær-Regnskap.no ")
    assert response.status_code == 200
    assert "E-postvarsler sendes til Post@blåbær-regnskap.no fra nå av." in response.text
    ((office_id,),) = await query(settings, "select id from office where name = 'Kontor A AS'")
    assert await query(settings, "select office_id, address, enabled from email_alert_setting") == [
        (office_id, "Post@blåbær-regnskap.no", True)
    ]
    page = (await client.get("/innstillinger/varsler")).text
    assert 'value="Post@blåbær-regnskap.no"' in page
    assert "blåbær" not in (await office_b.get("/innstillinger/varsler")).text
    # Switched off, the address may also be emptied.
    assert (await save_address(client, "", enabled=False)).status_code == 200
    assert await query(settings, "select address, enabled from email_alert_setting") == [
        ("", False)
    ]


async def test_send_test_email_reaches_the_address_or_says_why_not(
    client: AsyncTestClient, settings: Settings, smtp: SmtpServer
) -> None:
    from app import create_app

    await save_address(client, "post@blåbær.no")
    response = await client.post("/innstillinger/varsler/e-post/test", headers=htmx(client))
    assert response.status_code == 200
    assert '<p class="notice" role="status">Test-e-posten er sendt til post@blåbær.no.' in (
        response.text
    )
    (message,) = smtp.inbox.messages
    assert smtp.inbox.recipients == [["post@xn--blbr-roah.no"]]  # the domain as SMTP spells it
    assert message["Subject"] == "ERP-integrasjon: test av e-postvarsler"

    down = dataclasses.replace(settings, smtp=smtp_config(free_port()))
    async with AsyncTestClient(create_app(down)) as other:
        await login(other, "regnskap@kontor-a.no", PASSWORD)
        failed = await other.post("/innstillinger/varsler/e-post/test", headers=htmx(other))
    assert failed.status_code == 200
    assert re.search(
        r'<p class="error" role="alert">Test-e-posten ble ikke sendt: '
        r"Kunne ikke koble til e-postserveren.</p>",
        failed.text,
    )
    assert 'class="notice"' not in failed.text


# -- SMTP: TLS, login, settings ----------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.database_agnostic
async def test_starttls_and_login_and_the_password_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bool]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        assert session.ssl is not None  # only ever over TLS
        ok = auth_data.login == b"varsel" and auth_data.password == SMTP_PASSWORD.encode()
        logins.append((auth_data.login, ok))
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself

    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_context,
        require_starttls=True,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        config = SmtpConfig(
            host="127.0.0.1",
            port=controller.port,
            security="starttls",
            username="varsel",
            password=SMTP_PASSWORD,
            sender=SENDER,
        )
        assert SMTP_PASSWORD not in repr(config)
        await send_test(Mailer(config, ssl_context=trusted), OFFICE_ADDRESS, "Kontor A AS")
        assert len(inbox.messages) == 1 and logins == [(b"varsel", True)]

        wrong = dataclasses.replace(config, password="feil-passord")
        with caplog.at_level(logging.DEBUG), pytest.raises(MailError) as refused:
            await send_test(Mailer(wrong, ssl_context=trusted), OFFICE_ADDRESS, "Kontor A AS")
        assert "godtok ikke brukernavnet eller passordet" in refused.value.reason
        tried = len(logins)  # smtplib tries each mechanism the server offers
        assert tried > 1 and not any(ok for _, ok in logins[1:])

        # A certificate we do not trust: no connection, so the password is never sent.
        with pytest.raises(MailError) as untrusted:
            await send_test(Mailer(config), OFFICE_ADDRESS, "Kontor A AS")
        assert "sikker forbindelse (TLS)" in untrusted.value.reason
        assert len(logins) == tried and len(inbox.messages) == 1
    finally:
        controller.stop()
    for secret in (SMTP_PASSWORD, "feil-passord"):
        assert secret not in caplog.text
        assert secret not in str(refused.value) and secret not in refused.value.reason


@pytest.mark.database_agnostic
def test_smtp_settings_are_checked_at_start() -> None:
    def smtp_of(**env: str) -> SmtpConfig:
        return SmtpConfig.from_env(env)

    assert not smtp_of().configured
    plain = smtp_of(SMTP_HOST="smtp.kontoret.no", SMTP_FROM="varsel@kontoret.no")
    assert (plain.port, plain.security, plain.username) == (587, "starttls", None)
    tls = smtp_of(SMTP_HOST="smtp.kontoret.no", SMTP_FROM=SENDER, SMTP_TLS="tls")
    assert tls.port == 465
    full = smtp_of(
        SMTP_HOST="smtp.kontoret.no",
        SMTP_PORT="2525",
        SMTP_USERNAME="varsel",
        SMTP_PASSWORD=SMTP_PASSWORD,
        SMTP_FROM=SENDER,
    )
    assert (full.port, full.username, full.password) == (2525, "varsel", SMTP_PASSWORD)
    assert SMTP_PASSWORD not in repr(full)
    for env, named in [
        ({"SMTP_FROM": "varsel@kontoret.no"}, "SMTP_FROM is set but SMTP_HOST is not"),
        ({"SMTP_HOST": "smtp.kontoret.no"}, "SMTP_FROM is required"),
        ({"SMTP_HOST": "smtp.kontoret.no", "SMTP_FROM": "varsel"}, "SMTP_FROM must be"),
        ({"SMTP_HOST": "smtp://x", "SMTP_FROM": SENDER}, "SMTP_HOST must be"),
        ({"SMTP_HOST": "x.no", "SMTP_FROM": SENDER, "SMTP_TLS": "yes"}, "SMTP_TLS must be"),
        ({"SMTP_HOST": "x.no", "SMTP_FROM": SENDER, "SMTP_PORT": "0"}, "SMTP_PORT must be"),
        ({"SMTP_HOST": "x.no", "SMTP_FROM": SENDER, "SMTP_PORT": "x"}, "SMTP_PORT must be"),
        (
            {"SMTP_HOST": "x.no", "SMTP_FROM": SENDER, "SMTP_USERNAME": "varsel"},
            "SMTP_USERNAME and SMTP_PASSWORD must be set together",
        ),
        (
            {
                "SMTP_HOST": "x.no",
                "SMTP_FROM": SENDER,
                "SMTP_TLS": "off",
                "SMTP_USERNAME": "varsel",
                "SMTP_PASSWORD": SMTP_PASSWORD,
            },
            "never sent unencrypted",
        ),
    ]:
        with pytest.raises(SettingsError) as refused:
            smtp_of(**env)
        assert named in str(refused.value), env
        assert SMTP_PASSWORD not in str(refused.value)


# -- point 5: a failed Send testvarsel is red, with its reason ---------------------------


@pytest.fixture(scope="module")
def _failing_receiver() -> Iterator[Receiver]:
    port = free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}/hooks/erp")
    with served_in_thread(receiver, port):
        yield receiver


async def test_a_failed_test_notification_is_red_with_its_reason_in_the_open(
    client: AsyncTestClient, _failing_receiver: Receiver
) -> None:
    _failing_receiver.statuses[:] = [500]
    await client.get("/innstillinger/varsler")
    created = await client.post(
        "/innstillinger/varsler",
        data={"url": _failing_receiver.url, "enabled": "on", "_csrf_token": csrf(client)},
    )
    assert created.status_code == 200
    response = await client.post("/innstillinger/varsler/test", headers=htmx(client))
    assert response.status_code == 200
    assert re.search(
        r'<p class="error" role="alert">Testvarselet ble ikke tatt imot: HTTP 500\. ', response.text
    )
    assert "Testvarselet" not in "".join(re.findall(r'<p class="notice".*?</p>', response.text))
    # The log shows the failed attempt's answer in the open, not behind a disclosure.
    log = await client.get("/innstillinger/varsler/logg")
    folded = re.sub(r"<details>.*?</details>", "", log.text, flags=re.S)
    assert re.search(r'<li class="failed">[^<]*HTTP 500', folded)

    # A receiver that cannot be reached: the reason is the error's words.
    await client.post(
        "/innstillinger/varsler",
        data={"url": f"http://127.0.0.1:{free_port()}/hook", "enabled": "on"},
        headers=htmx(client),
    )
    unreachable = await client.post("/innstillinger/varsler/test", headers=htmx(client))
    assert (
        '<p class="error" role="alert">Testvarselet ble ikke tatt imot: '
        "Kunne ikke koble til mottakeren." in unreachable.text
    )


async def test_a_delivered_test_notification_stays_green(
    client: AsyncTestClient, _failing_receiver: Receiver
) -> None:
    _failing_receiver.statuses.clear()
    await client.get("/innstillinger/varsler")
    await client.post(
        "/innstillinger/varsler",
        data={"url": _failing_receiver.url, "enabled": "on", "_csrf_token": csrf(client)},
    )
    response = await client.post("/innstillinger/varsler/test", headers=htmx(client))
    assert '<p class="notice" role="status">Testvarselet ble levert.</p>' in response.text
    assert 'class="error"' not in response.text
    assert re.search(r'<li class="ok">[^<]*HTTP 200', response.text)
