"""Outbound notifications: a real HTTP receiver on a loopback port gets signed events that
verify with the Standard Webhooks reference library; failures are retried on the schedule
and every attempt is in the leveranselogg."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from litestar.testing import AsyncTestClient
from markupsafe import escape
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from models.base import utcnow
from services import notifications
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.notifications import NotificationWorker, running_notifications
from services.outbound_guard import GuardedClient, OutboundPolicy
from services.settings import Settings
from tests import api_support
from tests.conftest import create_integration, csrf, free_port, htmx, query
from tests.processes import served_in_thread

pytestmark = pytest.mark.anyio

office_b = api_support.office_b
no_settle_delay = api_support.no_settle_delay
SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@dataclass
class Receiver:
    """Records every request; answers with the queued statuses, then 200."""

    url: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.requests.append((headers, body))
        status = self.statuses.pop(0) if self.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def events(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture(scope="module")
def _receiver_server() -> Iterator[Receiver]:
    port = free_port()
    receiver = Receiver(url=f"http://127.0.0.1:{port}/hooks/erp")
    with served_in_thread(receiver, port):
        yield receiver


@pytest.fixture
def receiver(_receiver_server: Receiver) -> Receiver:
    _receiver_server.requests.clear()
    _receiver_server.statuses.clear()
    return _receiver_server


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[tuple[NotificationWorker, Clock]]:
    engine = create_engine(settings.database_url)
    clock = Clock()
    async with GuardedClient(OutboundPolicy.from_settings(settings)) as http:
        yield (
            NotificationWorker(
                create_session_factory(engine),
                KeyVault(settings.encryption_keys),
                http,
                now=clock,
                deadline=5,
            ),
            clock,
        )
    await engine.dispose()


async def configure(client: AsyncTestClient, url: str) -> str:
    """Opprett webhook through the settings page; returns the signing secret it shows."""
    await client.get("/innstillinger/varsler")
    response = await client.post(
        "/innstillinger/varsler",
        data={"url": url, "enabled": "on", "_csrf_token": csrf(client)},
    )
    assert response.status_code == 200, response.text
    (secret,) = set(SECRET.findall(response.text))
    return secret


async def activate_all(client: AsyncTestClient, settings: Settings) -> list[int]:
    await create_integration(client)
    ((integration_id,),) = await query(settings, "select id from integration")
    await client.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(client))
    return [r[0] for r in await query(settings, "select id from client where active = true")]


async def execute(settings: Settings, sql: str) -> None:
    from sqlalchemy import text

    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(text(sql))
    await engine.dispose()


def verify(secret: str, headers: dict[str, str], body: bytes) -> dict:
    return Webhook(secret).verify(body, headers)


async def test_webhook_is_configured_with_a_secret_stored_encrypted(
    client: AsyncTestClient, settings: Settings, receiver: Receiver
) -> None:
    secret = await configure(client, receiver.url)
    ((url, ciphertext, enabled),) = await query(
        settings, "select url, secret_ciphertext, enabled from notification_endpoint"
    )
    assert (url, enabled) == (receiver.url, True)
    assert "whsec_" not in ciphertext
    assert KeyVault(settings.encryption_keys).decrypt(ciphertext) == secret
    page = (await client.get("/innstillinger/varsler")).text
    assert "Leveranselogg" in page and "Vis signeringshemmelighet" in page


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("", id="empty"),
        pytest.param("http://example.com/hook", id="plain-http-elsewhere"),
        pytest.param("ftp://example.com/hook", id="ftp"),
        pytest.param("https://user:pw@example.com/hook", id="credentials"),
        pytest.param("rapportering", id="no-scheme"),
    ],
)
async def test_bad_urls_are_refused_with_the_field_marked(
    client: AsyncTestClient, url: str
) -> None:
    await client.get("/innstillinger/varsler")
    response = await client.post(
        "/innstillinger/varsler", data={"url": url, "enabled": "on"}, headers=htmx(client)
    )
    assert response.status_code == 422
    assert 'aria-invalid="true"' in response.text


async def test_changes_become_signed_events_that_verify(
    client: AsyncTestClient, settings: Settings, receiver: Receiver, worker
) -> None:
    secret = await configure(client, receiver.url)
    active = await activate_all(client, settings)
    delivery_worker, _ = worker
    queued, attempted = await delivery_worker.run_once()
    assert queued == attempted == len(active)
    assert len(receiver.requests) == len(active)
    for headers, body in receiver.requests:
        event = verify(secret, headers, body)
        assert event["type"] == "client.activated"
        assert headers["webhook-id"].startswith("msg_")
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
        assert headers["content-type"] == "application/json"
    assert sorted(e["data"]["client_id"] for e in receiver.events()) == sorted(active)
    await delivery_worker.run_once()
    assert len(receiver.requests) == len(active)  # each event once


async def test_the_leveranselogg_names_the_client_of_each_event(
    client: AsyncTestClient, settings: Settings, receiver: Receiver, worker
) -> None:
    await configure(client, receiver.url)
    active = await activate_all(client, settings)
    await worker[0].run_once()
    names = await query(
        settings, f"select name from client where id in ({','.join(map(str, active))})"
    )
    log = (await client.get("/innstillinger/varsler/logg", headers=htmx(client))).text
    for (name,) in names:
        assert f"<td>{escape(name)}</td>" in log, name


async def test_tampered_or_wrongly_signed_events_do_not_verify(
    client: AsyncTestClient, settings: Settings, receiver: Receiver, worker
) -> None:
    secret = await configure(client, receiver.url)
    await activate_all(client, settings)
    await worker[0].run_once()
    headers, body = receiver.requests[0]
    verify(secret, headers, body)
    with pytest.raises(WebhookVerificationError):
        verify(secret, headers, body.replace(b"client.activated", b"client.deactivated"))
    with pytest.raises(WebhookVerificationError):
        verify(secret, {**headers, "webhook-id": "msg_other"}, body)
    with pytest.raises(WebhookVerificationError):
        verify(secret, {**headers, "webhook-timestamp": str(int(time.time()) - 3600)}, body)
    with pytest.raises(WebhookVerificationError):
        verify(notifications.new_secret(), headers, body)


def test_signature_matches_the_specification_reference() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    timestamp = 1614265330
    expected = Webhook(secret).sign(
        "msg_p5jXN8AQM9LWM0D4loKWxJek", datetime.fromtimestamp(timestamp), body.decode()
    )
    assert notifications.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp, body) == expected
    assert expected == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


async def test_failed_deliveries_are_retried_on_the_schedule_and_logged(
    client: AsyncTestClient, settings: Settings, receiver: Receiver, worker
) -> None:
    secret = await configure(client, receiver.url)
    integration_id = await create_integration(client)
    ((client_id,),) = (await query(settings, "select min(id) from client"))[:1]
    await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "true"},
        headers=htmx(client),
    )
    delivery_worker, clock = worker
    receiver.statuses = [500, 503]
    await delivery_worker.run_once()
    assert len(receiver.requests) == 1
    await delivery_worker.run_once()  # not due yet
    assert len(receiver.requests) == 1
    clock.offset += timedelta(seconds=6)
    await delivery_worker.run_once()
    assert len(receiver.requests) == 2
    clock.offset += timedelta(minutes=5, seconds=1)
    await delivery_worker.run_once()
    assert len(receiver.requests) == 3
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert len(ids) == 1  # the same message id on every retry
    for headers, body in receiver.requests:
        verify(secret, headers, body)  # each attempt signed with its own timestamp
    attempts = await query(settings, "select status_code, ok from notification_attempt order by id")
    assert attempts == [(500, False), (503, False), (200, True)]
    assert await query(settings, "select status, attempts from notification_delivery") == [
        ("delivered", 3)
    ]
    log = (await client.get("/innstillinger/varsler/logg")).text
    assert "Levert" in log and "HTTP 500" in log and "HTTP 503" in log and "HTTP 200" in log


async def test_a_delivery_gives_up_after_about_a_day(
    client: AsyncTestClient, settings: Settings, receiver: Receiver, worker
) -> None:
    await configure(client, receiver.url)
    await activate_all(client, settings)
    ((first,),) = await query(settings, "select min(client_id) from data_change")
    await execute(settings, f"delete from data_change where client_id != {first}")
    delivery_worker, clock = worker
    receiver.statuses = [500] * 20
    await delivery_worker.run_once()
    for wait in notifications.RETRY_SCHEDULE:
        clock.offset += wait + timedelta(seconds=1)
        await delivery_worker.run_once()
    assert len(receiver.requests) == notifications.MAX_ATTEMPTS
    assert await query(settings, "select status from notification_delivery") == [("failed",)]
    total = sum(notifications.RETRY_SCHEDULE, timedelta(0))
    assert timedelta(hours=24) <= total <= timedelta(hours=30)
    clock.offset += timedelta(days=1)
    await delivery_worker.run_once()
    assert len(receiver.requests) == notifications.MAX_ATTEMPTS
    log = (await client.get("/innstillinger/varsler")).text
    assert "Feilet" in log and "Prøv igjen" in log
    ((delivery_id,),) = await query(settings, "select id from notification_delivery")
    retry = await client.post(
        f"/innstillinger/varsler/leveranser/{delivery_id}/prov-igjen", headers=htmx(client)
    )
    assert retry.status_code == 200 and "Venter" in retry.text
    receiver.statuses = []
    clock.offset = timedelta(0)
    await delivery_worker.run_once()
    assert await query(settings, "select status from notification_delivery") == [("delivered",)]


async def test_unreachable_receiver_is_logged_as_a_connection_error(
    client: AsyncTestClient, settings: Settings, worker
) -> None:
    await configure(client, f"http://127.0.0.1:{free_port()}/hook")
    await activate_all(client, settings)
    await worker[0].run_once()
    errors = await query(settings, "select status_code, error from notification_attempt")
    # Generic: the socket's own words told open ports from closed ones.
    assert errors and all(
        (code, error) == (None, "Kunne ikke koble til mottakeren") for code, error in errors
    )


async def test_clients_with_send_data_off_are_not_announced(
    client: AsyncTestClient, settings: Settings, receiver: Receiver, worker
) -> None:
    await configure(client, receiver.url)
    integration_id = await create_integration(client)
    ((client_id,),) = (await query(settings, "select min(id) from client"))[:1]
    row = f"/integrasjoner/{integration_id}/klienter/{client_id}"
    await client.post(f"{row}/send_data", data={"on": "false"}, headers=htmx(client))
    await client.post(f"{row}/active", data={"on": "true"}, headers=htmx(client))
    await worker[0].run_once()
    assert receiver.requests == []


async def test_test_event_is_delivered_at_once_and_shown(
    client: AsyncTestClient, settings: Settings, receiver: Receiver
) -> None:
    secret = await configure(client, receiver.url)
    response = await client.post("/innstillinger/varsler/test", headers=htmx(client))
    assert response.status_code == 200
    assert "Testvarselet ble levert" in response.text
    assert "webhook.test" in response.text and "Levert" in response.text
    ((headers, body),) = receiver.requests
    assert verify(secret, headers, body)["type"] == "webhook.test"


async def test_a_test_event_being_sent_is_not_sent_again_by_the_worker(
    client: AsyncTestClient, settings: Settings, receiver: Receiver, worker
) -> None:
    await configure(client, receiver.url)
    ((office_id,),) = await query(settings, "select office_id from notification_endpoint")
    delivery_worker, clock = worker
    engine = create_engine(settings.database_url)
    async with create_session_factory(engine)() as db:
        endpoint = await notifications.get_endpoint(db, office_id)
        assert endpoint is not None
        await notifications.queue_test_event(db, endpoint)
    await engine.dispose()
    # Send testvarsel attempts it in the request; the worker's tick leaves it alone...
    assert await delivery_worker.deliver_due() == 0
    assert receiver.requests == []
    # ...unless that request never got to it.
    clock.offset = notifications.delivery.CLAIM + timedelta(seconds=1)
    assert await delivery_worker.deliver_due() == 1
    assert [e["type"] for e in receiver.events()] == ["webhook.test"]


async def test_rotating_the_secret_signs_with_the_new_one(
    client: AsyncTestClient, settings: Settings, receiver: Receiver
) -> None:
    old = await configure(client, receiver.url)
    response = await client.post("/innstillinger/varsler/ny-hemmelighet", headers=htmx(client))
    (new,) = set(SECRET.findall(response.text))
    assert new != old
    await client.post("/innstillinger/varsler/test", headers=htmx(client))
    ((headers, body),) = receiver.requests
    verify(new, headers, body)
    with pytest.raises(WebhookVerificationError):
        verify(old, headers, body)


async def test_worker_runs_in_the_background_when_enabled(
    client: AsyncTestClient, settings: Settings, receiver: Receiver
) -> None:
    await configure(client, receiver.url)
    active = await activate_all(client, settings)
    engine = create_engine(settings.database_url)
    async with (
        GuardedClient(OutboundPolicy.from_settings(settings)) as http,
        running_notifications(
            create_session_factory(engine),
            KeyVault(settings.encryption_keys),
            http,
            enabled=True,
            interval=0.05,
        ) as running,
    ):
        assert running is not None
        deadline = time.monotonic() + 10
        while len(receiver.requests) < len(active) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await engine.dispose()
    assert len(receiver.requests) == len(active)


async def test_other_office_sees_and_touches_nothing(
    client: AsyncTestClient, office_b: AsyncTestClient, settings: Settings, receiver: Receiver
) -> None:
    await configure(client, receiver.url)
    page = (await office_b.get("/innstillinger/varsler")).text
    assert receiver.url not in page and "whsec_" not in page
    for path in (
        "/innstillinger/varsler/test",
        "/innstillinger/varsler/slett",
        "/innstillinger/varsler/ny-hemmelighet",
    ):
        assert (await office_b.post(path, headers=htmx(office_b))).status_code == 404, path
    assert (await office_b.get("/innstillinger/varsler/logg")).status_code == 404
    assert len(await query(settings, "select id from notification_endpoint")) == 1
