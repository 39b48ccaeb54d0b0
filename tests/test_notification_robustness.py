"""One slow or huge receiver cannot stall the others or exhaust memory, and whatever goes
wrong with one delivery is that delivery's failed attempt, counted, and nothing more.

The receivers are real sockets on loopback, served from threads: one drips a byte every half
second, one streams hundreds of megabytes, one answers at once.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from models import NotificationDelivery, NotificationEndpoint
from models.base import utcnow
from services import notifications
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.notifications import NotificationWorker, running_notifications
from services.outbound_guard import FAILED, MAX_ANSWER, TIMED_OUT, GuardedClient, OutboundPolicy
from services.settings import Settings
from tests import api_support
from tests.conftest import htmx, query
from tests.outbound_support import Listener, RssPeak, listening, read_request
from tests.test_notifications import configure

pytestmark = pytest.mark.anyio

office_b = api_support.office_b
no_settle_delay = api_support.no_settle_delay

CONTROL_CHARACTERS = "Adressen kan ikke inneholde mellomrom, linjeskift"


def answer_at_once(conn: socket.socket, _listener: Listener) -> None:
    read_request(conn)
    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def drip(conn: socket.socket, listener: Listener) -> None:
    """One byte of an answer every half second, for as long as anyone listens."""
    read_request(conn)
    answer = b"HTTP/1.1 200 OK\r\nX-Slowly: " + b"z" * 10_000
    for byte in answer:
        if listener.stopping.wait(0.5):
            return
        conn.sendall(bytes([byte]))


async def endpoint_ids(settings: Settings) -> list[int]:
    return [
        row[0] for row in await query(settings, "select id from notification_endpoint order by id")
    ]


async def queue_due(settings: Settings, endpoint_id: int, count: int = 1) -> list[int]:
    """Test events for the endpoint, due now (Send testvarsel queues them claimed)."""
    engine = create_engine(settings.database_url)
    ids = []
    async with create_session_factory(engine)() as db:
        endpoint = await db.get(NotificationEndpoint, endpoint_id)
        assert endpoint is not None
        for _ in range(count):
            delivery_id = await notifications.queue_test_event(db, endpoint)
            delivery = await db.get(NotificationDelivery, delivery_id)
            assert delivery is not None
            delivery.next_attempt_at = utcnow()
            await db.commit()
            ids.append(delivery_id)
    await engine.dispose()
    return ids


async def execute(settings: Settings, sql: str, **params: object) -> None:
    engine = create_engine(settings.database_url)
    async with engine.begin() as connection:
        await connection.execute(text(sql), params)
    await engine.dispose()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float) -> float:
    """Seconds until `check` held; fails the test after `seconds`."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_a_slow_receiver_holds_up_neither_the_tick_nor_another_office(
    client: AsyncTestClient, office_b: AsyncTestClient, settings: Settings
) -> None:
    deadline = 2.0
    with listening(drip) as slow, listening(answer_at_once) as fast:
        await configure(client, f"http://127.0.0.1:{slow.port}/hooks")
        await configure(office_b, f"http://127.0.0.1:{fast.port}/hooks")
        slow_endpoint, fast_endpoint = await endpoint_ids(settings)
        await queue_due(settings, slow_endpoint, count=5)
        engine = create_engine(settings.database_url)
        async with (
            GuardedClient(OutboundPolicy.from_settings(settings)) as http,
            running_notifications(
                create_session_factory(engine),
                KeyVault(settings.encryption_keys),
                http,
                enabled=True,
                interval=0.05,
                deadline=deadline,
            ),
        ):

            async def slow_in_flight() -> bool:
                return slow.in_flight >= 1

            await eventually(slow_in_flight, 5)
            (other,) = await queue_due(settings, fast_endpoint)

            async def other_delivered() -> bool:
                rows = await query(
                    settings, f"select status from notification_delivery where id = {other}"
                )
                return rows == [("delivered",)]

            # Seconds, not the drip's minutes: the tick did not wait for the slow receiver.
            assert await eventually(other_delivered, 3) < 1.5
            assert fast.accepted == 1
            # Still within the first attempts' deadline: two in flight to the slow receiver,
            # its per-endpoint bound, although five were due.
            assert slow.accepted == 2

            async def slow_attempt_ended() -> bool:
                return bool(
                    await query(settings, "select id from notification_attempt where ok = false")
                )

            await eventually(slow_attempt_ended, deadline + 3)
            (first, *_) = await query(
                settings,
                "select error, duration_ms from notification_attempt where ok = false order by id",
            )
            assert first[0] == TIMED_OUT
            assert deadline * 1000 <= first[1] < deadline * 1000 + 1000
            leaving = time.monotonic()
        # Shutdown cancels the lanes mid-drip and waits for them: promptly, none left behind.
        assert time.monotonic() - leaving < 1.0
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("notify-")]
        await engine.dispose()
    log = (await client.get("/innstillinger/varsler/logg", headers=htmx(client))).text
    assert TIMED_OUT in log


async def test_a_huge_answer_is_not_read_into_memory(
    client: AsyncTestClient, settings: Settings
) -> None:
    size = 300 * 1024 * 1024
    sent = [0]

    def flood(conn: socket.socket, _listener: Listener) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"x" * 65536
        while sent[0] < size:
            conn.sendall(chunk)
            sent[0] += len(chunk)

    with listening(flood) as huge:
        await configure(client, f"http://127.0.0.1:{huge.port}/hooks")
        with RssPeak() as rss:
            response = await client.post("/innstillinger/varsler/test", headers=htmx(client))
        assert response.status_code == 200
        assert "Testvarselet ble levert" in response.text  # a 200 is a 200, however long
        print(f"RSS {rss.baseline / 1024:.1f} MiB, peak +{rss.growth_mib:.1f} MiB, sent {sent[0]}")
        assert rss.growth_mib < 8
        # We stopped reading and closed: the receiver got to send little more than the
        # kernel's socket buffers hold.
        await asyncio.sleep(0.2)
        assert MAX_ANSWER <= sent[0] < 32 * 1024 * 1024


async def test_a_stored_url_with_control_characters_is_a_counted_failure_not_a_500(
    client: AsyncTestClient, office_b: AsyncTestClient, settings: Settings
) -> None:
    with listening(answer_at_once) as fast:
        await configure(client, "https://hooks.kontoret.no/erp")
        await configure(office_b, f"http://127.0.0.1:{fast.port}/hooks")
        bad_endpoint, good_endpoint = await endpoint_ids(settings)
        # Saved before URLs were checked for them; now a header injection if sent.
        await execute(
            settings,
            "update notification_endpoint set url = :url where id = :id",
            url="https://hooks.kontoret.no/erp\r\nX-Injected: 1",
            id=bad_endpoint,
        )

        response = await client.post("/innstillinger/varsler/test", headers=htmx(client))
        assert response.status_code == 200
        assert "Testvarselet ble ikke tatt imot" in response.text
        assert CONTROL_CHARACTERS in response.text  # the leveranselogg says why

        # The worker: the bad delivery fails, counted, and the other office's goes out.
        (bad,) = await queue_due(settings, bad_endpoint)
        (good,) = await queue_due(settings, good_endpoint)
        await _worker_run(settings)
        assert fast.accepted == 1
        rows = dict(
            (row[0], row[1:])
            for row in await query(
                settings, "select id, status, attempts, last_error from notification_delivery"
            )
        )
        assert rows[good] == ("delivered", 1, None)
        assert rows[bad][:2] == ("pending", 1)
        assert rows[bad][2].startswith(CONTROL_CHARACTERS)
        # Retried on the schedule, not at every tick.
        await _worker_run(settings)
        assert (
            await query(settings, f"select attempts from notification_delivery where id = {bad}")
        ) == [(1,)]


async def test_an_undecryptable_secret_fails_that_delivery_alone(
    client: AsyncTestClient, office_b: AsyncTestClient, settings: Settings
) -> None:
    """Any exception, not only HTTP errors: here a secret encrypted under a key since lost."""
    with listening(answer_at_once) as fast:
        await configure(client, f"http://127.0.0.1:{fast.port}/a")
        await configure(office_b, f"http://127.0.0.1:{fast.port}/b")
        lost, good_endpoint = await endpoint_ids(settings)
        await execute(
            settings,
            "update notification_endpoint set secret_ciphertext = :c where id = :id",
            c="gAAAAABlost-key-ciphertext",
            id=lost,
        )
        (bad,) = await queue_due(settings, lost)
        (good,) = await queue_due(settings, good_endpoint)
        await _worker_run(settings)
        rows = dict(
            (row[0], row[1:])
            for row in await query(
                settings, "select id, status, attempts, last_error from notification_delivery"
            )
        )
        assert rows[good] == ("delivered", 1, None)
        assert rows[bad] == ("pending", 1, FAILED)
        assert fast.accepted == 1  # the undecryptable one never left


async def _worker_run(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    async with GuardedClient(OutboundPolicy.from_settings(settings)) as http:
        worker = NotificationWorker(
            create_session_factory(engine), KeyVault(settings.encryption_keys), http, deadline=5
        )
        await worker.run_once()
    await engine.dispose()
