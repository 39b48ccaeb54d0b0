"""A new system is a connector and one registration: a made-up system ("Kassebok"), defined
only here, goes through Ny integrasjon, activation, the scheduler's sync and the API beside
Tripletex, with no product code naming it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping
from datetime import date, timedelta
from decimal import Decimal

import aiohttp
import pytest
from cryptography.fernet import Fernet
from litestar.testing import AsyncTestClient

from services.connectors.base import (
    Balances,
    CallbackRejected,
    Capabilities,
    ChangeEvent,
    CompanyRef,
    ConnectKind,
    KeyInfo,
    KeyKind,
    KeyRejected,
    RemoteAccount,
    RemoteClient,
    RemoteSubscription,
    Wording,
)
from services.connectors.registry import SYSTEMS
from services.metrics import Metrics
from services.settings import Settings, SettingsError, SyncConfig
from tests import api_support
from tests.api_support import bearer, create_token
from tests.conftest import add_user, create_integration, csrf, htmx, login, query

pytestmark = pytest.mark.anyio
api = api_support.api
no_settle_delay = api_support.no_settle_delay

KEY = "kassebok-kontornokkel"
CLIENTS = [RemoteClient(11, "Fjellbakeriet AS", "912345674"), RemoteClient(12, "Sjøbua AS", "")]
# Per account: name, balance on 1 January of BASE_YEAR, and the movement of every month.
BASE_YEAR = date.today().year - 1
LEDGER = {
    1920: ("Bankinnskudd", Decimal("25000.00"), Decimal("1234.56")),
    2050: ("Annen egenkapital", Decimal("-25000.00"), Decimal("0.00")),
    2700: ("Utgående merverdiavgift", Decimal("0.00"), Decimal("-246.91")),
    3000: ("Salgsinntekt", Decimal("0.00"), Decimal("-987.65")),
}


def opening(number: int, day: date) -> Decimal:
    """The ledger's balance at the start of `day`, the first of a month."""
    _, year_start, monthly = LEDGER[number]
    if number >= 3000:  # result accounts start every year at zero
        return monthly * (day.month - 1)
    return year_start + monthly * ((day.year - BASE_YEAR) * 12 + day.month - 1)


class KassebokConnector:
    system = "kassebok"
    display_name = "Kassebok"
    capabilities = Capabilities(connect=ConnectKind.KEY, webhooks=False)
    wording = Wording(
        no_api_access="Gi Kassebok-tilgang under Oppsett → Regnskapsfører.",
        access_lost="Kassebok når ikke lenger klienten.",
        no_clients="Legg klientene til i Kassebok og trykk Oppdater klientliste.",
    )
    events: tuple[str, ...] = ()

    def __init__(self, requests: list[str]) -> None:
        self.requests = requests  # what the product asked of this system

    async def inspect_key(self, key: str) -> KeyInfo:
        self.requests.append("inspect_key")
        if key != KEY:
            raise KeyRejected("unknown key", status=401)
        return KeyInfo(1, "Kassebok Regnskap AS", KeyKind.ACCOUNTANT, list(CLIENTS))

    async def fetch_accounts(
        self, key: str, company: CompanyRef, *, conditional: bool = False
    ) -> list[RemoteAccount] | None:
        self.requests.append(f"accounts {company.erp_id}")
        return [RemoteAccount(n, n, name) for n, (name, _, _) in LEDGER.items()]

    async def fetch_balances(
        self,
        key: str,
        company: CompanyRef,
        date_from: date,
        date_to: date,
        *,
        conditional: bool = False,
    ) -> Balances:
        self.requests.append(f"balances {company.erp_id} {date_from:%Y-%m}")
        return Balances(
            date_from=date_from,
            date_to=date_to,
            opening={n: opening(n, date_from) for n in LEDGER},
            movement={n: monthly for n, (_, _, monthly) in LEDGER.items()},
        )

    def forget_cache(self, company: CompanyRef) -> None:
        pass

    async def subscribe(
        self, key: str, company: CompanyRef, event: str, target_url: str, secret: str
    ) -> RemoteSubscription:
        raise AssertionError("Kassebok has no webhooks: nothing may subscribe")

    async def renew_subscription(
        self, key: str, company: CompanyRef, erp_id: int
    ) -> RemoteSubscription:
        raise AssertionError("Kassebok has no webhooks")

    async def unsubscribe(self, key: str, company: CompanyRef, erp_id: int) -> None:
        raise AssertionError("Kassebok has no webhooks")

    async def list_subscriptions(self, key: str, company: CompanyRef) -> list[RemoteSubscription]:
        raise AssertionError("Kassebok has no webhooks")

    def read_callback(self, secret: str, headers: dict[str, str], body: bytes) -> ChangeEvent:
        raise CallbackRejected("Kassebok sends no callbacks")

    def callback_id(self, headers: dict[str, str]) -> str | None:
        return None


@dataclasses.dataclass(frozen=True)
class KassebokSettings:
    """KASSEBOK_REGION: the one variable of the made-up system."""

    region: str
    requests: list[str] = dataclasses.field(default_factory=list, compare=False)
    system: str = "kassebok"

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, demo: bool, port: int) -> KassebokSettings:
        region = env.get("KASSEBOK_REGION", "no")
        if region not in ("no", "se"):
            raise SettingsError(f"KASSEBOK_REGION must be no or se, not {region!r}")
        return cls(region)

    def connector(self, http: aiohttp.ClientSession, metrics: Metrics) -> KassebokConnector:
        return KassebokConnector(self.requests)


@pytest.fixture
async def kassebok() -> KassebokSettings:
    return KassebokSettings("no")


@pytest.fixture
async def app(settings: Settings, kassebok: KassebokSettings) -> AsyncIterator[AsyncTestClient]:
    """The product with Tripletex and Kassebok registered, its scheduler running."""
    from app import create_app

    both = dataclasses.replace(
        settings,
        systems=(*settings.systems, kassebok),
        sync=SyncConfig(enabled=True, tick_seconds=0.1),
    )
    await add_user(settings, "regnskap@kontor-a.no", "Kontor A AS")
    async with AsyncTestClient(create_app(both)) as test_client:
        await login(test_client, "regnskap@kontor-a.no")
        yield test_client


def test_a_systems_settings_block_is_read_and_checked_at_start() -> None:
    env = {"SECRET_KEY": "x" * 40, "ENCRYPTION_KEY": "", "DATA_DIR": "/tmp"}
    systems = (*SYSTEMS, KassebokSettings)
    settings = Settings.from_env({**env, "KASSEBOK_REGION": "se"}, demo=True, systems=systems)
    assert [block.system for block in settings.systems] == [
        "tripletex",
        "poweroffice",
        "saft",
        "kassebok",
    ]
    assert settings.system("kassebok") == KassebokSettings("se")
    # Outside demo mode, an optional system without its operator's keys is left out.
    production = Settings.from_env(
        {
            **env,
            "KASSEBOK_REGION": "se",
            "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "TRIPLETEX_CONSUMER_TOKEN": "operator-consumer-token",
        },
        demo=False,
        systems=systems,
    )
    assert [block.system for block in production.systems] == ["tripletex", "saft", "kassebok"]
    with pytest.raises(SettingsError, match="KASSEBOK_REGION"):
        Settings.from_env({**env, "KASSEBOK_REGION": "dk"}, demo=True, systems=systems)


async def test_a_new_system_goes_from_ny_integrasjon_to_the_api(
    app: AsyncTestClient, api: AsyncTestClient, settings: Settings, kassebok: KassebokSettings
) -> None:
    form = (await app.get("/integrasjoner/ny")).text
    assert 'value="kassebok"' in form and "Kassebok" in form
    assert 'value="tripletex"' in form  # offered side by side

    refused = await app.post(
        "/integrasjoner/ny",
        data={"system": "kassebok", "key": "feil", "description": "", "_csrf_token": csrf(app)},
    )
    assert refused.status_code == 422
    assert "Kassebok godtok ikke brukernøkkelen" in refused.text
    unknown = await app.post(
        "/integrasjoner/ny",
        data={"system": "visma", "key": KEY, "description": "", "_csrf_token": csrf(app)},
    )
    assert unknown.status_code == 422 and "Velg et regnskapssystem fra listen." in unknown.text

    created = await app.post(
        "/integrasjoner/ny",
        data={"system": "kassebok", "key": KEY, "description": "", "_csrf_token": csrf(app)},
        follow_redirects=False,
    )
    assert created.status_code == 303, created.text
    integration_id = int(created.headers["location"].rsplit("/", 1)[1])
    tripletex_id = await create_integration(app)  # the registered system, unchanged
    assert await query(settings, "select system from integration order by id") == [
        ("kassebok",),
        ("tripletex",),
    ]
    listing = (await app.get("/integrasjoner")).text
    assert "Kassebok - Kassebok Regnskap AS" in listing
    assert "Tripletex - Klienter" in listing
    page = (await app.get(f"/integrasjoner/{integration_id}")).text
    assert "Fjellbakeriet AS" in page and "Sjøbua AS" in page
    assert "Kassebok sier ikke fra når noe bokføres" in page  # polling: the system has no webhooks
    assert "Tripletex" not in page.replace("Tripletex-", "")  # nothing of the other system
    tripletex_page = (await app.get(f"/integrasjoner/{tripletex_id}")).text
    assert "Tripletex varsler ikke" not in tripletex_page

    activated = await app.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(app))
    assert activated.status_code == 200
    # The scheduler syncs them through the connector of their system.
    local = dict(
        await query(
            settings,
            f"select erp_id, id from client where integration_id = {integration_id}",
        )
    )
    for _ in range(200):
        synced = await query(
            settings,
            f"select count(*) from client where integration_id = {integration_id} "
            "and sync_status = 'ok'",
        )
        if synced == [(2,)]:
            break
        await asyncio.sleep(0.05)
    assert synced == [(2,)], await query(settings, "select sync_status, sync_error from client")
    assert "accounts 11" in kassebok.requests and "accounts 12" in kassebok.requests

    token = await create_token(app)
    listed = (await api.get("/api/v1/clients", headers=bearer(token))).json()["data"]
    assert {c["name"]: c["system"] for c in listed if c["integration_id"] == integration_id} == {
        "Fjellbakeriet AS": "kassebok",
        "Sjøbua AS": "kassebok",
    }
    today = date.today()
    for month in (date(today.year - 1, 1, 1), date(today.year, today.month, 1)):
        response = await api.get(
            f"/api/v1/clients/{local[11]}/balances",
            params={"month": f"{month:%Y-%m}"},
            headers=bearer(token),
        )
        assert response.status_code == 200, response.text
        lines = {line["account_number"]: line for line in response.json()["lines"]}
        for number, (_, _, monthly) in LEDGER.items():
            expected_opening = opening(number, month)
            if not expected_opening and not monthly:
                assert number not in lines  # nothing in, nothing moved: left out
                continue
            line = lines[number]
            assert Decimal(line["opening"]) == expected_opening, (month, number)
            assert Decimal(line["movement"]) == monthly, (month, number)
            assert Decimal(line["closing"]) == expected_opening + monthly, (month, number)
    accounts = await api.get(f"/api/v1/clients/{local[12]}/accounts", headers=bearer(token))
    assert {a["number"] for a in accounts.json()["data"]} == set(LEDGER)

    # Its callbacks have no receiver: a path under its name answers 404 like any unknown hook.
    hook = await api.post("/webhooks/kassebok/anything", content=b"{}")
    assert hook.status_code == 404


async def test_demo_buttons_only_for_the_systems_whose_simulator_runs(
    settings: Settings, kassebok: KassebokSettings
) -> None:
    from app import create_app

    demo = dataclasses.replace(settings, demo=True, systems=(*settings.systems, kassebok))
    await add_user(settings, "regnskap@kontor-a.no", "Kontor A AS")
    async with AsyncTestClient(create_app(demo)) as app:
        await login(app, "regnskap@kontor-a.no")
        kassebok_id = int(
            (
                await app.post(
                    "/integrasjoner/ny",
                    data={"system": "kassebok", "key": KEY, "_csrf_token": csrf(app)},
                    follow_redirects=False,
                )
            )
            .headers["location"]
            .rsplit("/", 1)[1]
        )
        tripletex_id = await create_integration(app)
        assert "Demo: gi tilgang" in (await app.get(f"/integrasjoner/{tripletex_id}")).text
        page = (await app.get(f"/integrasjoner/{kassebok_id}")).text
        assert "Fjellbakeriet AS" in page and "Demo:" not in page
        grant = await app.post(f"/demo/integrasjoner/{kassebok_id}/ny-klient", headers=htmx(app))
        assert grant.status_code == 404


def test_connectors_import_no_tables() -> None:
    """A connector speaks its system's API; the tables are the product's business."""
    import subprocess
    import sys

    probe = (
        "import sys, services.connectors.registry; "
        "print(sorted(m for m in sys.modules if m == 'models' or m.startswith('models.')))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == "[]"


async def test_an_integration_of_a_system_this_installation_lacks_is_shown_not_synced(
    settings: Settings, kassebok: KassebokSettings
) -> None:
    """Kassebok taken out of SYSTEMS again (or a row from a newer release): its integration
    is listed by its stored name, its clients are not claimed, and it can be deleted."""
    from sqlalchemy import text

    from app import create_app
    from services.db import create_engine, create_session_factory
    from services.sync import leases

    await add_user(settings, "regnskap@kontor-a.no", "Kontor A AS")
    both = dataclasses.replace(settings, systems=(*settings.systems, kassebok))
    async with AsyncTestClient(create_app(both)) as with_it:
        await login(with_it, "regnskap@kontor-a.no")
        created = await with_it.post(
            "/integrasjoner/ny",
            data={"system": "kassebok", "key": KEY, "_csrf_token": csrf(with_it)},
            follow_redirects=False,
        )
        integration_id = int(created.headers["location"].rsplit("/", 1)[1])
        await with_it.post(f"/integrasjoner/{integration_id}/aktiver-alle", headers=htmx(with_it))

    engine = create_engine(settings.database_url)
    factory = create_session_factory(engine)
    async with factory() as db:
        await db.exec(text("update client set full_sync = true"))  # type: ignore[call-overload]
        await db.commit()
        lease = timedelta(minutes=5)
        assert await leases.claim_due(db, "a", lease, limit=10, systems=["tripletex"]) == []
        # The control: with a connector for it, its two clients are due.
        both_systems = ["tripletex", "kassebok"]
        assert len(await leases.claim_due(db, "b", lease, limit=10, systems=both_systems)) == 2
    await engine.dispose()

    async with AsyncTestClient(create_app(settings)) as without:  # Tripletex only
        await login(without, "regnskap@kontor-a.no")
        listing = await without.get("/integrasjoner")
        assert listing.status_code == 200 and "kassebok - Kassebok Regnskap AS" in listing.text
        page = await without.get(f"/integrasjoner/{integration_id}")
        assert page.status_code == 200 and "Fjellbakeriet AS" in page.text
        refresh = await without.post(
            f"/integrasjoner/{integration_id}/oppdater", headers=htmx(without)
        )
        assert refresh.status_code == 200
        assert "Systemet er ikke tilgjengelig i denne installasjonen" in refresh.text
        assert (await without.get(f"/integrasjoner/{integration_id}/slett")).status_code == 200
        deleted = await without.post(
            f"/integrasjoner/{integration_id}/slett",
            data={"_csrf_token": csrf(without)},
            follow_redirects=False,
        )
        assert deleted.status_code == 303
    assert await query(settings, "select count(*) from integration") == [(0,)]
