"""Innstillinger → Logg and /api/v1/audit: reading the audit log (filters, keyset paging
both ways, CSV export, retention), for administrators and for tokens that may read it."""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from models.office import Role, SigninSettings
from services import audit, audit_log
from services.audit import Actor
from services.db import create_engine, create_session_factory, open_session
from services.settings import Settings
from services.signin_settings import LABELS as SIGNIN_LABELS
from tests.api_support import TOKEN, api, bearer  # noqa: F401  (the `api` fixture)
from tests.conftest import add_user, csrf, execute, htmx, login, query

pytestmark = pytest.mark.anyio

ADMIN = "regnskap@kontor-a.no"
COLLEAGUE = "kollega@kontor-a.no"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(
    r'<tr class="audit-event" data-kind="([^"]+)">\s*<td class="when"[^>]*>([^<]+)</td>'
)


async def people(settings: Settings) -> dict[str, tuple[int, int]]:
    """E-mail → (user id, office id)."""
    rows = await query(settings, "select email, id, office_id from user_account")
    return {email: (user_id, office_id) for email, user_id, office_id in rows}


async def insert(settings: Settings, events: list[tuple[Actor, str, str, datetime, dict]]) -> None:
    """Events straight through audit.record, committed together, in place of what the app
    recorded so far (the test's own sign-in, …)."""
    await execute(settings, "delete from audit_event")
    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        for actor, kind, target, at, details in events:
            audit.record(db, actor, kind, target, at=at, **details)
        await db.commit()
    await engine.dispose()


async def insert_more(
    settings: Settings, events: list[tuple[Actor, str, str, datetime, dict]]
) -> None:
    """Events beside those already there."""
    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        for actor, kind, target, at, details in events:
            audit.record(db, actor, kind, target, at=at, **details)
        await db.commit()
    await engine.dispose()


async def admin_actor(settings: Settings, email: str = ADMIN) -> Actor:
    user_id, office_id = (await people(settings))[email]
    return Actor(office_id=office_id, label=email, user_id=user_id)


async def add_colleague(settings: Settings, role: Role = Role.ACCOUNTANT) -> Actor:
    await add_user(settings, COLLEAGUE, "Kontor A AS")
    await execute(
        settings, f"update user_account set role = '{role.value}' where email = '{COLLEAGUE}'"
    )
    return await admin_actor(settings, COLLEAGUE)


def rows(html: str) -> list[tuple[str, str]]:
    return ROW.findall(html)


def link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" hx-get="[^"]+" hx-push-url="true" rel="{rel}">', html)
    return found[1].replace("&amp;", "&") if found else None


# -- the page -----------------------------------------------------------------------------


async def test_the_log_shows_the_newest_first_in_oslo_time_with_readable_details(
    client: AsyncTestClient, settings: Settings
) -> None:
    me = await admin_actor(settings)
    await insert(
        settings,
        [
            (me, "signin", "", START, {}),
            (
                me,
                "client.active",
                "Klient: Bygg AS (123456789)",
                START + timedelta(hours=1),
                {"active": {"before": False, "after": True}},
            ),
            (
                me,
                "client.bulk",
                "Klienter",
                START + timedelta(hours=2),
                {
                    "count": 12,
                    "filter": {"status": "ny"},
                    "send_data": {"before": True, "after": False},
                },
            ),
        ],
    )
    page = await client.get("/innstillinger/logg")
    assert page.status_code == 200
    assert 'aria-current="page">Logg</a>' in page.text
    assert [kind for kind, _ in rows(page.text)] == ["client.bulk", "client.active", "signin"]
    # 12:00 UTC on 1 March is 13:00 in Oslo (winter time).
    assert rows(page.text)[-1][1] == "01.03.2026 13:00:00"
    assert "Masseendring av klienter" in page.text
    assert "Klient: Bygg AS (123456789)" in page.text
    assert "AKTIV: av → på" in page.text
    assert "Antall: 12<br>Filter: Status: Ny<br>SEND DATA: på → av" in page.text
    assert ADMIN in page.text


async def test_a_switch_reads_as_its_name_and_before_after() -> None:
    assert audit_log.describe('{"before": false, "after": true}', "client.active") == [
        "AKTIV: av → på"
    ]
    assert audit_log.describe({"before": "lesetilgang", "after": "administrator"}, "user.role") == [
        "Rolle: Lesetilgang → Administrator"
    ]
    assert audit_log.describe({"before": 1, "after": 2}, "signin") == ["1 → 2"]


async def test_unknown_detail_keys_are_shown_plainly() -> None:
    assert audit_log.describe('{"mystery": 3, "note": "hei"}') == ["mystery: 3", "note: hei"]
    assert audit_log.describe(
        {"before": {"role": "lesetilgang"}, "after": {"role": "administrator"}}
    ) == ["Rolle: Lesetilgang → Administrator"]


# One event of each kind, with the details the app's flows record for it (as
# tests/test_audit_recording.py finds them): each must read in Norwegian on the page.
ABOUT = {"integration": "Tripletex - Klienter", "client_id": 7, "integration_id": 2}
SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("signin", {"method": "passord", "second_factor": "app"}),
    ("signin", {"method": "passord", "second_factor": "gjenopprettingskode"}),
    ("signin", {"method": "oidc", "provider": "Testleverandør"}),
    ("signin", {"method": "invitasjon", "second_factor": "nei"}),
    ("signin.failed", {"reason": "feil passord"}),
    (
        "signin.failed",
        {"method": "oidc", "reason": "Fikk ikke kontakt med …", "code": "utilgjengelig"},
    ),
    ("signout", {}),
    ("client.active", {"before": False, "after": True, **ABOUT}),
    ("client.active", {"before": True, "after": False, "bulk": True, **ABOUT}),
    ("client.send_data", {"before": True, "after": False, **ABOUT}),
    ("client.delete_accounts", {"before": False, "after": True, **ABOUT}),
    (
        "client.bulk",
        {
            "action": "Aktiver alle viste",
            "count": 3,
            "shown": 4,
            "filter": {"q": "bygg", "sort": "-navn", "status": "nokkelfeil"},
        },
    ),
    ("client.sync", {"action": "Full synkronisering", "before": False, "after": True, **ABOUT}),
    ("client.sync", {"action": "Sjekk tilgang på nytt", **ABOUT}),
    ("integration.created", {"system": "Tripletex", "description": "Klienter", "clients": 12}),
    (
        "integration.changed",
        {
            "description": {"before": "A", "after": "B"},
            "key": "endret",
            "added": 1,
            "lost": 0,
            "regained": 2,
        },
    ),
    ("integration.deleted", {"name": "Tripletex - Klienter", "system": "Tripletex", "clients": 3}),
    ("integration.refreshed", {"added": 1, "regained": 0, "lost": 1}),
    ("integration.refreshed", {"added": 1, "renewed": 2}),
    ("saft.import", {"file": "a.xml", "status": "imported", "months": "2024-01–2024-12", **ABOUT}),
    ("saft.import", {"file": "tom.xml", "status": "refused", "months": ""}),
    ("saft.import", {"file": "b.xml", "status": "unchanged", "months": "2024-01–2024-12"}),
    ("saft.import", {"file": "c.xml", "status": "failed", "months": ""}),
    ("api_token.created", {"name": "Rapportering", "reads_audit": True}),
    ("api_token.revoked", {"name": "Rapportering"}),
    (
        "notifications.changed",
        {
            "url": {"before": None, "after": "https://hooks.example.no"},
            "url_path": "endret",
            "enabled": {"before": None, "after": True},
            "secret": "endret",
        },
    ),
    (
        "notifications.changed",
        {
            "address": {"before": None, "after": "varsler@kontor-a.no"},
            "enabled": {"before": True, "after": False},
        },
    ),
    (
        "notifications.retry",
        {
            "message_id": "msg_1",
            "event_type": "client.synced",
            "status": {"before": "failed", "after": "pending"},
        },
    ),
    ("user.invited", {"role": "Regnskapsfører", "replaced": "forrige invitasjon trukket tilbake"}),
    ("user.invitation_revoked", {"role": "Lesetilgang"}),
    ("user.joined", {"role": "Lesetilgang", "via": "passord"}),
    ("user.role", {"before": "Lesetilgang", "after": "Administrator", "via": "rollekobling"}),
    ("user.deactivated", {"role": "Regnskapsfører"}),
    ("user.reactivated", {"role": "Regnskapsfører"}),
    ("user.password", {"password": "endret"}),
    ("user.totp", {"enabled": {"before": False, "after": True}}),
    ("user.totp", {"recovery_codes": "endret"}),
    ("user.linked", {"provider": "Testleverandør"}),
    (
        "signin_settings.changed",
        {
            SIGNIN_LABELS["sso_required"]: {"before": False, "after": True},
            SIGNIN_LABELS["oidc_client_secret"]: "endret",
        },
    ),
    ("audit.retention", {"retention_years": {"before": 5, "after": 7}}),
]
# Codes the app stores that a person should never read as they are.
CODES = re.compile(
    r"\b(imported|refused|unchanged|failed|pending|delivered|oidc|True|False|None|"
    r"nokkelfeil|-navn|client_id|integration_id|url_path|message_id|event_type)\b"
)


def recorded_keys() -> set[str]:
    """Every detail key written literally in an audit.record/build call of the app."""
    keys: set[str] = set()
    for path in [*(ROOT / "services").rglob("*.py"), *(ROOT / "routes").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("record", "build")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "audit"
            ):
                continue
            for keyword in node.keywords:
                if keyword.arg is not None:
                    keys.add(keyword.arg)
                    continue
                for inner in ast.walk(keyword.value):  # **{"action": …}
                    if isinstance(inner, ast.Dict):
                        keys |= {k.value for k in inner.keys if isinstance(k, ast.Constant)}
    return keys - {"at", "before", "after"}


async def test_every_detail_key_the_app_records_has_a_norwegian_name() -> None:
    keys = recorded_keys()
    assert {"reason", "second_factor", "bulk", "regained", "replaced", "code"} <= keys
    assert sorted(keys - set(audit_log.LABELS)) == []


async def test_one_event_of_each_kind_reads_in_norwegian() -> None:
    assert {kind for kind, _ in SAMPLES} == set(audit.KINDS)
    names = {
        *audit_log.LABELS.values(),
        *audit_log.SUBJECTS.values(),
        *SIGNIN_LABELS.values(),
    }
    for kind, details in SAMPLES:
        lines = audit_log.describe(json.dumps(details), kind)
        for line in lines:
            name, _, value = line.partition(": ")
            assert name in names, (kind, line)
            assert not CODES.search(value), (kind, line)
        assert set(details) - audit_log.HIDDEN <= set(audit_log.LABELS) | {
            "before",
            "after",
            *SIGNIN_LABELS.values(),
        }
    assert audit_log.describe(
        {"action": "Deaktiver alle viste", "filter": {"q": "bygg", "sort": "-navn"}}
    ) == ["Handling: Deaktiver alle viste", "Filter: Søk: bygg, Sortering: navn (Å–A)"]
    assert audit_log.describe(
        {"before": True, "after": False, "bulk": True, **ABOUT}, "client.active"
    ) == ["AKTIV: på → av", "Masseendring: ja", "Integrasjon: Tripletex - Klienter"]
    assert audit_log.describe({"status": "refused"}, "saft.import") == ["Status: avvist"]


async def test_filter_by_person_kind_and_period(
    client: AsyncTestClient, settings: Settings
) -> None:
    me = await admin_actor(settings)
    colleague = await add_colleague(settings)
    token = audit.token_actor(me.office_id, 1, "Rapportering")
    await execute(
        settings,
        f"insert into api_token (id, office_id, name, prefix, token_hash, created_by, created_at,"
        f" reads_audit) values (1, {me.office_id}, 'Rapportering', 'erpapi_x', 'h', '', "
        f"'2026-01-01 00:00:00', false)",
    )
    await insert(
        settings,
        [
            (me, "signin", "", START, {}),
            (colleague, "client.active", "Klient: A", START + timedelta(days=1), {}),
            (token, "saft.import", "Klient: B", START + timedelta(days=2), {}),
            # 23:30 UTC on 3 March is 00:30 on 4 March in Oslo.
            (colleague, "signin", "", datetime(2026, 3, 3, 23, 30, tzinfo=UTC), {}),
        ],
    )
    headers = htmx(client)

    async def kinds(**params: str) -> list[str]:
        response = await client.get("/innstillinger/logg", params=params, headers=headers)
        assert response.status_code == 200
        assert "<html" not in response.text  # the list alone
        return [kind for kind, _ in rows(response.text)]

    assert await kinds(hvem=str(colleague.user_id)) == ["signin", "client.active"]
    assert await kinds(hvem="api") == ["saft.import"]
    assert await kinds(hva="signin") == ["signin", "signin"]
    assert await kinds(fra="2026-03-02", til="2026-03-03") == ["saft.import", "client.active"]
    assert await kinds(fra="2026-03-04") == ["signin"]
    assert await kinds(hvem=str(colleague.user_id), hva="signin", til="2026-03-03") == []
    page = await client.get("/innstillinger/logg", params={"hvem": str(colleague.user_id)})
    assert f'<option value="{colleague.user_id}" selected>{COLLEAGUE}</option>' in page.text
    assert '<option value="api">API-nøkler</option>' in page.text
    assert '<option value="client.active">Aktiv slått på/av</option>' in page.text


async def test_a_bad_filter_is_said_not_crashed(client: AsyncTestClient) -> None:
    response = await client.get(
        "/innstillinger/logg", params={"fra": "1. mars"}, headers=htmx(client)
    )
    assert response.status_code == 422
    assert "Skriv datoen som åååå-mm-dd." in response.text
    response = await client.get("/innstillinger/logg", params={"eldre": "tull"})
    assert response.status_code == 422
    assert "ugyldig" in response.text


async def test_paging_older_and_newer_covers_every_event_once(
    client: AsyncTestClient, settings: Settings
) -> None:
    me = await admin_actor(settings)
    # 123 events, in threes at the same moment: the id breaks the ties.
    await insert(
        settings,
        [(me, "signin", f"n{i}", START + timedelta(minutes=i // 3), {}) for i in range(123)],
    )
    target = re.compile(r'<td class="target"[^>]*>n(\d+)</td>')
    pages: list[list[int]] = []
    url: str | None = "/innstillinger/logg"
    while url:
        html = (await client.get(url, headers=htmx(client))).text
        pages.append([int(n) for n in target.findall(html)])
        url = link(html, "next")
    assert [len(p) for p in pages] == [50, 50, 23]
    seen = [n for p in pages for n in p]
    assert seen == sorted(range(123), reverse=True)  # newest first, no gap, no duplicate
    # And back: Nyere from the last page gives the same pages again.
    back: list[list[int]] = [pages[-1]]
    url = link(html, "prev")
    while url:
        html = (await client.get(url, headers=htmx(client))).text
        back.append([int(n) for n in target.findall(html)])
        url = link(html, "prev")
    assert back == list(reversed(pages))
    assert link(html, "prev") is None and link(html, "next") is not None


async def test_paging_keeps_the_filter(client: AsyncTestClient, settings: Settings) -> None:
    me = await admin_actor(settings)
    await insert(
        settings,
        [
            (me, "signin" if i % 2 else "signout", "", START + timedelta(minutes=i), {})
            for i in range(120)
        ],
    )
    html = (await client.get("/innstillinger/logg", params={"hva": "signout"})).text
    older = link(html, "next")
    assert older and "hva=signout" in older
    second = (await client.get(older)).text
    assert {kind for kind, _ in rows(second)} == {"signout"}
    assert len(rows(second)) == 10


# -- CSV ----------------------------------------------------------------------------------


async def test_csv_export_of_the_filtered_log(client: AsyncTestClient, settings: Settings) -> None:
    me = await admin_actor(settings)
    await insert(
        settings,
        [
            (me, "signin", "", START, {}),
            (
                me,
                "client.active",
                "=Klient; med semikolon",
                START + timedelta(hours=1),
                {"active": {"before": True, "after": False}},
            ),
        ],
    )
    page = (await client.get("/innstillinger/logg", params={"hva": "client.active"})).text
    assert 'href="/innstillinger/logg/logg.csv?hva=client.active"' in page
    response = await client.get("/innstillinger/logg/logg.csv", params={"hva": "client.active"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    assert lines == [
        ["Tid", "Hvem", "Hva", "Gjelder", "Endring", "Adresse", "Hendelse"],
        [
            "01.03.2026 14:00:00",
            ADMIN,
            "Aktiv slått på/av",
            "'=Klient; med semikolon",
            "AKTIV: på → av",
            "",
            "client.active",
        ],
    ]


async def test_csv_export_keeps_an_address_from_being_read_as_a_formula(
    client: AsyncTestClient, settings: Settings
) -> None:
    me = await admin_actor(settings)
    tricky = Actor(me.office_id, me.label, user_id=me.user_id, address="=1+1")
    dashed = Actor(me.office_id, me.label, user_id=me.user_id, address="-2+3")
    await insert(settings, [(tricky, "signin", "", START, {}), (dashed, "signout", "", START, {})])
    response = await client.get("/innstillinger/logg/logg.csv")
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    assert sorted(line[5] for line in lines[1:]) == ["'-2+3", "'=1+1"]


async def test_csv_export_streams_every_event_in_batches(
    settings: Settings, client: AsyncTestClient
) -> None:
    me = await admin_actor(settings)
    await insert(
        settings, [(me, "signin", f"n{i}", START + timedelta(seconds=i), {}) for i in range(25)]
    )
    engine = create_engine(settings.database_url)
    try:
        chunks = [
            c
            async for c in audit_log.csv_chunks(
                create_session_factory(engine), me.office_id, audit_log.LogFilter(), batch=10
            )
        ]
    finally:
        await engine.dispose()
    assert len(chunks) == 4  # the header, then 10 + 10 + 5
    text = b"".join(chunks).decode("utf-8-sig")
    assert [line.split(";")[3] for line in text.splitlines()[1:]] == [
        f"n{i}" for i in range(24, -1, -1)
    ]


# -- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role", [Role.ACCOUNTANT, Role.READER], ids=["regnskapsforer", "lesetilgang"]
)
async def test_only_administrators_read_the_log(settings: Settings, role: Role) -> None:
    from app import create_app

    await add_colleague(settings, role)
    async with AsyncTestClient(create_app(settings)) as other:
        await login(other, COLLEAGUE)
        assert (await other.get("/innstillinger/logg")).status_code == 403
        assert (await other.get("/innstillinger/logg", headers=htmx(other))).status_code == 403
        assert (await other.get("/innstillinger/logg/logg.csv")).status_code == 403
        refused = await other.post(
            "/innstillinger/logg/lagring", data={"years": "1", "_csrf_token": csrf(other)}
        )
        assert refused.status_code == 403
    assert await query(settings, "select count(*) from signin_settings") == [(0,)]


# -- retention ----------------------------------------------------------------------------


async def test_retention_is_five_years_until_changed_and_the_change_is_logged(
    client: AsyncTestClient, settings: Settings
) -> None:
    page = (await client.get("/innstillinger/logg")).text
    assert 'name="years" type="number"' in page and 'value="5"' in page
    bad = await client.post(
        "/innstillinger/logg/lagring",
        data={"years": "0", "_csrf_token": csrf(client)},
        headers=htmx(client),
    )
    assert bad.status_code == 422
    assert "Loggen må beholdes i minst 1 år." in bad.text
    saved = await client.post(
        "/innstillinger/logg/lagring",
        data={"years": "7", "_csrf_token": csrf(client)},
        headers=htmx(client),
    )
    assert saved.status_code == 200
    assert "Loggen beholdes i 7 år." in saved.text
    assert await query(settings, "select audit_retention_years from signin_settings") == [(7,)]
    log = (await client.get("/innstillinger/logg", params={"hva": "audit.retention"})).text
    assert "Loggens lagringstid endret" in log
    assert "Behold loggen (år): 5 → 7" in log


async def test_the_daily_job_deletes_only_events_older_than_the_retention(
    client: AsyncTestClient, settings: Settings
) -> None:
    me = await admin_actor(settings)
    await add_user(settings, "regnskap@kontor-b.no", "Kontor B AS")
    other = await admin_actor(settings, "regnskap@kontor-b.no")
    now = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    ages = [1, 3, 4, 6, 8]  # years before now, less a day
    await insert(
        settings,
        [
            (actor, "signin", f"{actor.label} {age}", now - timedelta(days=365 * age - 1), {})
            for actor in (me, other)
            for age in ages
        ],
    )
    engine = create_engine(settings.database_url)
    async with open_session(create_session_factory(engine)) as db:
        db.add(SigninSettings(office_id=other.office_id, audit_retention_years=2))
        await db.commit()
    await engine.dispose()
    engine = create_engine(settings.database_url)
    try:
        deleted = await audit_log.delete_expired(create_session_factory(engine), now=now, batch=2)
    finally:
        await engine.dispose()
    assert deleted == 2 + 4
    kept = sorted(r[0] for r in await query(settings, "select target_label from audit_event"))
    assert kept == sorted([f"{ADMIN} {a}" for a in (1, 3, 4)] + ["regnskap@kontor-b.no 1"])


# -- the API ------------------------------------------------------------------------------


async def create_token(client: AsyncTestClient, name: str, *, reads_audit: bool) -> str:
    await client.get("/innstillinger/api-nokler")
    data = {"name": name, "_csrf_token": csrf(client)}
    if reads_audit:
        data["reads_audit"] = "on"
    response = await client.post("/innstillinger/api-nokler", data=data)
    assert response.status_code == 200, response.text
    return TOKEN.findall(response.text)[0]


async def test_the_token_form_offers_the_audit_right(client: AsyncTestClient) -> None:
    page = (await client.get("/innstillinger/api-nokler")).text
    assert 'name="reads_audit"' in page and "Kan lese revisjonsloggen" in page


async def test_a_token_without_the_right_gets_403(
    client: AsyncTestClient,
    api: AsyncTestClient,  # noqa: F811
) -> None:
    token = await create_token(client, "Rapportering", reads_audit=False)
    response = await api.get("/api/v1/audit", headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert "Kan lese revisjonsloggen" in response.json()["message"]


async def test_a_token_with_the_right_pages_the_log_oldest_first(
    client: AsyncTestClient,
    api: AsyncTestClient,  # noqa: F811
    settings: Settings,
) -> None:
    token = await create_token(client, "Loggsamler", reads_audit=True)
    me = await admin_actor(settings)
    await add_user(settings, "regnskap@kontor-b.no", "Kontor B AS")
    other = await admin_actor(settings, "regnskap@kontor-b.no")
    await insert(
        settings,
        [
            (
                me,
                "client.active",
                f"n{i}",
                START + timedelta(minutes=i // 2),
                {"active": {"before": False, "after": True}},
            )
            for i in range(7)
        ]
        + [(other, "signin", "kontor b", START, {})],
    )
    # The token's own creation is in the log too; everything after START is ours.
    seen: list[str] = []
    cursor = None
    calls = 0
    while True:
        params = {"limit": "3", "since": "2026-03-01T12:00:00Z"}
        if cursor:
            params["cursor"] = cursor
        body = (await api.get("/api/v1/audit", params=params, headers=bearer(token))).json()
        seen += [event["target"] for event in body["data"]]
        cursor = body["next_cursor"]
        calls += 1
        if not body["has_more"]:
            break
    assert seen == [f"n{i}" for i in range(7)]
    assert calls == 3
    first = (
        await api.get(
            "/api/v1/audit", params={"kind": "client.active", "limit": "1"}, headers=bearer(token)
        )
    ).json()
    event = first["data"][0]
    assert event["kind_name"] == "Aktiv slått på/av"
    assert event["actor"] == ADMIN and event["actor_type"] == "user"
    assert event["details"] == {"active": {"before": False, "after": True}}
    assert event["at"].startswith("2026-03-01T12:00:00")
    # Nothing new after the last cursor: an empty page with the same cursor to poll again.
    again = (
        await api.get("/api/v1/audit", params={"cursor": cursor}, headers=bearer(token))
    ).json()
    assert again == {"data": [], "next_cursor": cursor, "has_more": False}
    until = (
        await api.get(
            "/api/v1/audit",
            params={"since": "2026-03-01", "until": "2026-03-01T12:01:00Z"},
            headers=bearer(token),
        )
    ).json()
    assert [e["target"] for e in until["data"]] == ["n0", "n1"]


async def test_the_api_holds_back_an_event_until_it_has_settled(
    client: AsyncTestClient,
    api: AsyncTestClient,  # noqa: F811
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An event's time is taken when it is recorded: one still being committed may land
    behind a poller's cursor. Events younger than SETTLE are not handed out yet."""
    token = await create_token(client, "Loggsamler", reads_audit=True)
    me = await admin_actor(settings)
    now = datetime.now(UTC)
    await insert(
        settings,
        [
            (me, "signin", "gammel", now - timedelta(minutes=5), {}),
            (me, "signin", "fersk", now - timedelta(seconds=1), {}),
        ],
    )
    monkeypatch.setattr(audit_log, "utcnow", lambda: now)
    first = (await api.get("/api/v1/audit", headers=bearer(token))).json()
    assert [e["target"] for e in first["data"]] == ["gammel"]
    assert first["has_more"] is False

    # A slow transaction commits an event stamped before the newest one handed out…
    await insert_more(settings, [(me, "signin", "sen", now - timedelta(seconds=20), {})])
    # … and half a minute on, the poll from the cursor hands out both, in time order.
    monkeypatch.setattr(audit_log, "utcnow", lambda: now + audit_log.SETTLE)
    params = {"cursor": first["next_cursor"]}
    later = (await api.get("/api/v1/audit", params=params, headers=bearer(token))).json()
    assert [e["target"] for e in later["data"]] == ["sen", "fersk"]
    assert timedelta(seconds=30) <= audit_log.SETTLE
    schema = (await api.get("/api/v1/schema/openapi.json")).json()
    assert "30 seconds old" in schema["paths"]["/api/v1/audit"]["get"]["description"]


async def test_a_date_alone_in_the_api_is_a_day_in_norway(
    client: AsyncTestClient,
    api: AsyncTestClient,  # noqa: F811
    settings: Settings,
) -> None:
    token = await create_token(client, "Loggsamler", reads_audit=True)
    me = await admin_actor(settings)
    oslo_day = datetime(2026, 3, 1, tzinfo=audit_log.OSLO)  # 23:00 UTC the day before
    await insert(
        settings,
        [
            (me, "signin", "før", oslo_day - timedelta(minutes=30), {}),
            (me, "signin", "morgen", oslo_day + timedelta(minutes=30), {}),
            (me, "signin", "kveld", oslo_day + timedelta(hours=23, minutes=30), {}),
            (me, "signin", "etter", oslo_day + timedelta(hours=24, minutes=30), {}),
        ],
    )
    params = {"since": "2026-03-01", "until": "2026-03-01"}  # as Fra/Til on the page
    body = (await api.get("/api/v1/audit", params=params, headers=bearer(token))).json()
    assert [e["target"] for e in body["data"]] == ["morgen", "kveld"]
    page = await client.get(
        "/innstillinger/logg", params={"fra": "2026-03-01", "til": "2026-03-01"}
    )
    assert re.findall(r'data-label="Gjelder">([^<]*)<', page.text) == ["kveld", "morgen"]
    schema = (await api.get("/api/v1/schema/openapi.json")).json()
    since = next(
        p for p in schema["paths"]["/api/v1/audit"]["get"]["parameters"] if p["name"] == "since"
    )
    assert "Europe/Oslo" in since["description"]


async def test_the_api_refuses_a_bad_cursor_kind_or_time(
    client: AsyncTestClient,
    api: AsyncTestClient,  # noqa: F811
) -> None:
    token = await create_token(client, "Loggsamler", reads_audit=True)
    for params, field in (
        ({"cursor": "tull"}, "cursor"),
        ({"kind": "nope"}, "kind"),
        ({"since": "i går"}, "since"),
    ):
        response = await api.get("/api/v1/audit", params=params, headers=bearer(token))
        assert response.status_code == 400, params
        assert response.json()["field"] == field


async def test_the_schema_documents_the_audit_endpoint(api: AsyncTestClient) -> None:  # noqa: F811
    schema = (await api.get("/api/v1/schema/openapi.json")).json()
    operation = schema["paths"]["/api/v1/audit"]["get"]
    assert {"200", "400", "401", "403", "429"} <= set(operation["responses"])
    assert {p["name"] for p in operation["parameters"]} >= {
        "cursor",
        "limit",
        "kind",
        "since",
        "until",
    }


async def test_the_nightly_job_applies_the_retention(
    client: AsyncTestClient, settings: Settings
) -> None:
    from services.connectors.registry import Connectors
    from services.crypto import KeyVault
    from services.sync.nightly import run_nightly

    me = await admin_actor(settings)
    now = datetime.now(UTC)
    await insert(
        settings,
        [
            (me, "signin", "ny", now - timedelta(days=30), {}),
            (me, "signin", "gammel", now - timedelta(days=365 * 5 + 2), {}),
        ],
    )
    engine = create_engine(settings.database_url)
    try:
        await run_nightly(
            create_session_factory(engine),
            KeyVault(settings.encryption_keys),
            Connectors([]),
            today=now.date(),
            years=2,
        )
    finally:
        await engine.dispose()
    assert await query(settings, "select target_label from audit_event") == [("ny",)]
