"""PowerOffice Go clients through our own sync engine and database (issue 18, the part built
so far): the onboarded clients are stored with their client keys encrypted, a full sync
stores every month of every account equal to the simulator's books, an unchanged poll is
cheap, a posted voucher is picked up, and rotate-keys re-encrypts the client keys."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet

from models import Integration
from services.audit import Actor
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.key_rotation import rotate_keys
from services.onboarding import create_onboarded_integration, reonboard
from services.settings import Settings
from services.sync.engine import SyncEngine, SyncSettings
from services.sync.periods import window
from tests import test_poweroffice_connector as connector_tests
from tests.conftest import OfficeDb, execute, query
from tests.sync_support import stored_month
from tests.test_poweroffice_connector import (
    PREFIX,
    REDIRECT,
    TODAY,
    World,
    _expected,
    _month,
    _nonzero,
)

pytestmark = pytest.mark.anyio
world = connector_tests.world  # the simulator and our connector to it


async def approved_token(world: World, client_ids: list[int]) -> str:
    """What PowerOffice redirects back with after the user approved these clients."""
    url, _ = await world.connector.initiate(REDIRECT)
    token = parse_qs(urlsplit(url).query)["token"][0]
    form = {"token": token, "action": "approve", "client": [str(i) for i in client_ids]}
    answer = await world.web.post(f"{PREFIX}/ApiAuthV2", data=form)
    return parse_qs(urlsplit(answer.headers["location"]).query)["token"][0]


async def onboard(
    office_db: OfficeDb, vault: KeyVault, world: World, chosen: list[int]
) -> Integration:
    """An integration of these simulator clients, stored as the onboarding callback does."""
    async with office_db.factory() as db:
        return await create_onboarded_integration(
            db,
            vault,
            world.connector,
            Actor(office_id=office_db.office_id, label="test"),
            raw_description="PowerOffice-klienter",
            token=await approved_token(world, chosen),
        )


async def test_onboarded_clients_sync_exactly_with_their_own_keys(
    settings: Settings, office_db: OfficeDb, world: World
) -> None:
    chosen = sorted(world.state.clients)[:2]
    vault = KeyVault(settings.encryption_keys)
    integration = await onboard(office_db, vault, world, chosen)
    rows = await query(
        settings,
        "SELECT id, org_number, key_ciphertext FROM client "
        f"WHERE integration_id = {integration.id}",
    )
    assert len(rows) == 2
    by_org = {c.org_no: c for c in world.state.clients.values()}
    for _, org, ciphertext in rows:
        assert by_org[org].id in chosen
        key = by_org[org].client_key
        assert ciphertext != key and vault.decrypt(ciphertext) == key  # kept encrypted

    engine = SyncEngine(
        office_db.factory,
        vault,
        Connectors([world.connector]),
        SyncSettings(years=2),
        today=lambda: TODAY,
    )
    for client_id, org, _ in rows:
        assert await engine.sync_client(client_id, trigger="activation", full=True) == "ok"
        books = by_org[org]
        for month in window(TODAY, 2):
            start, end = _month(month.year, month.month)
            opening, movement = _expected(books, start, end)
            stored = await stored_month(engine, client_id, month.year, month.month)
            expected = {
                number: (opening.get(number, 0), movement.get(number, 0))
                for number in _nonzero(opening).keys() | _nonzero(movement).keys()
            }
            assert stored == expected, (org, month)

    # An unchanged poll costs a couple of small requests, not a full sync.
    client_id, org, _ = rows[0]
    world.transport.reset()
    assert await engine.sync_client(client_id, trigger="poll", full=False) == "ok"
    assert world.transport.count() <= 3, world.transport.seen

    # A voucher posted in PowerOffice Go reaches the stored month with the next poll.
    simulator_id = by_org[org].id
    world.state.clock.advance(60)
    world.clock.now += 600  # the next poll interval
    posted = await world.web.post(
        f"{PREFIX}/_sim/clients/{simulator_id}/vouchers",
        json={
            "date": TODAY.isoformat(),
            "lines": [
                {"AccountNo": 1920, "Amount": "1234.56"},
                {"AccountNo": 3000, "Amount": "-1234.56"},
            ],
        },
    )
    assert posted.status_code == 201
    before = await stored_month(engine, client_id, TODAY.year, TODAY.month)
    assert await engine.sync_client(client_id, trigger="poll", full=False) == "ok"
    start, end = _month(TODAY.year, TODAY.month)
    opening, movement = _expected(by_org[org], start, end)
    stored = await stored_month(engine, client_id, TODAY.year, TODAY.month)
    assert stored[1920][1] == before[1920][1] + Decimal("1234.56")
    assert stored == {
        n: (opening.get(n, 0), movement.get(n, 0))
        for n in _nonzero(opening).keys() | _nonzero(movement).keys()
    }

    # A voucher back-dated to a month polling does not re-check (five months ago) is
    # fetched by the next poll too, alone with the recent months: not at the nightly run.
    old_month = window(TODAY, 2)[-6]
    world.state.clock.advance(60)
    world.clock.now += 600
    posted = await world.web.post(
        f"{PREFIX}/_sim/clients/{simulator_id}/vouchers",
        json={
            "date": date(old_month.year, old_month.month, 15).isoformat(),
            "lines": [
                {"AccountNo": 1920, "Amount": "-250.00"},
                {"AccountNo": 6300, "Amount": "250.00"},
            ],
        },
    )
    assert posted.status_code == 201
    before = await stored_month(engine, client_id, old_month.year, old_month.month)
    world.transport.reset()
    assert await engine.sync_client(client_id, trigger="poll", full=False) == "ok"
    start, end = _month(old_month.year, old_month.month)
    opening, movement = _expected(by_org[org], start, end)
    stored = await stored_month(engine, client_id, old_month.year, old_month.month)
    assert stored[6300][1] == before.get(6300, (0, 0))[1] + Decimal("250.00")
    assert stored == {
        n: (opening.get(n, 0), movement.get(n, 0))
        for n in _nonzero(opening).keys() | _nonzero(movement).keys()
    }
    # The change check, the chart check and the trial balances of the months touched.
    assert world.transport.count() <= 8, world.transport.seen

    # The client keys are re-encrypted by rotate-keys, and syncs go on with the new key alone.
    new = Fernet.generate_key().decode()
    rotated = await rotate_keys(office_db.factory, KeyVault((new, *settings.encryption_keys)))
    assert rotated == 2
    engine_new = SyncEngine(
        office_db.factory,
        KeyVault((new,)),
        Connectors([world.connector]),
        SyncSettings(years=2),
        today=lambda: TODAY,
    )
    assert await engine_new.sync_client(client_id, trigger="manual", full=True) == "ok"


async def test_a_refused_client_key_stops_only_that_client_until_it_is_approved_again(
    settings: Settings, office_db: OfficeDb, world: World
) -> None:
    chosen = sorted(world.state.clients)[:2]
    vault = KeyVault(settings.encryption_keys)
    integration = await onboard(office_db, vault, world, chosen)
    await execute(settings, "UPDATE client SET active = TRUE")
    rows = await query(
        settings, f"SELECT id, org_number FROM client WHERE integration_id = {integration.id}"
    )
    by_org = {c.org_no: c for c in world.state.clients.values()}
    (refused_id, refused_org), (other_id, _) = rows
    by_org[refused_org].client_key = "0b0e3c52-0000-4000-8000-000000000000"  # revoked there
    world.client.forget_token(
        vault.decrypt(
            (await query(settings, f"SELECT key_ciphertext FROM client WHERE id = {refused_id}"))[
                0
            ][0]
        )
    )
    engine = SyncEngine(
        office_db.factory, vault, Connectors([world.connector]), today=lambda: TODAY
    )
    assert await engine.sync_client(refused_id, trigger="activation", full=True) == "failed"
    assert await engine.sync_client(other_id, trigger="activation", full=True) == "ok"
    [(status, error, due)] = await query(
        settings, f"SELECT sync_status, sync_error, sync_due_at FROM client WHERE id = {refused_id}"
    )
    assert status == "key_error" and due is None
    assert "Oppdater klientliste og godkjenn klienten i PowerOffice Go på nytt" in error
    # The integration and its other clients go on.
    assert await query(
        settings, f"SELECT key_status FROM integration WHERE id = {integration.id}"
    ) == [("ok",)]

    # Approved again (Oppdater klientliste): a new key, and the client is due at once.
    by_org[refused_org].client_key = None
    async with office_db.factory() as db:
        found = await db.get(Integration, integration.id)
        assert found is not None
        result = await reonboard(
            db,
            vault,
            world.connector,
            found,
            Actor(office_id=found.office_id, label="test"),
            await approved_token(world, [by_org[refused_org].id]),
        )
    assert (result.added, result.renewed) == (0, 1)
    [(due,)] = await query(settings, f"SELECT sync_due_at FROM client WHERE id = {refused_id}")
    assert due is not None
    assert await engine.sync_client(refused_id, trigger="schedule") == "ok"


async def test_clients_are_told_apart_by_poweroffice_s_own_id_not_their_org_number(
    settings: Settings, office_db: OfficeDb, world: World
) -> None:
    """Two approved clients without an organisation number (a sole trader, a new company)
    and one listed twice stay apart, and re-onboarding gives each its own key back."""
    first, second, third = sorted(world.state.clients)[:3]
    for client_id in (first, second):
        world.state.clients[client_id].org_no = ""
    vault = KeyVault(settings.encryption_keys)
    integration = await onboard(office_db, vault, world, [first, second, third])
    rows = await query(settings, "SELECT name, org_number, key_ciphertext FROM client")
    assert len(rows) == 3
    keys = {c.name: c.client_key for c in world.state.clients.values()}
    for name, _, ciphertext in rows:
        assert vault.decrypt(ciphertext) == keys[name]  # each its own key

    async with office_db.factory() as db:
        found = await db.get(Integration, integration.id)
        assert found is not None
        result = await reonboard(
            db,
            vault,
            world.connector,
            found,
            Actor(office_id=found.office_id, label="test"),
            await approved_token(world, [first, second]),
        )
    assert (result.added, result.renewed) == (0, 2)
    rows = await query(settings, "SELECT name, key_ciphertext FROM client ORDER BY id")
    assert len(rows) == 3 and len({name for name, _ in rows}) == 3
    for name, ciphertext in rows:
        assert vault.decrypt(ciphertext) == keys[name]
