"""The client table: search, sorting, paging, switches and bulk actions."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import AsyncTestClient

from services.clients import sort_key
from services.settings import Settings
from tests.conftest import Simulator, create_integration, csrf, execute, htmx, query

pytestmark = pytest.mark.anyio


def row_names(html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>|&[a-z#0-9]+;", "", name).strip()
        for name in re.findall(r'<td class="name">(.*?)(?: <span|</td>)', html, re.S)
    ]


def client_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr id="client-(\d+)"', html)]


async def test_search_matches_name_or_grouped_org_number(
    client: AsyncTestClient, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    target = simulator.state.clients_of("demo-regnskapskontor")[5]
    number = target.organization_number
    grouped = f"{number[:3]} {number[3:6]} {number[6:]}"
    by_org = await client.get(
        f"/integrasjoner/{integration_id}", params={"q": grouped}, headers=htmx(client)
    )
    assert '<div id="client-table">' in by_org.text
    assert len(client_ids(by_org.text)) == 1
    assert "<html" not in by_org.text  # only the fragment
    word = target.name.split()[0].upper()
    by_name = await client.get(
        f"/integrasjoner/{integration_id}", params={"q": word}, headers=htmx(client)
    )
    assert len(client_ids(by_name.text)) >= 1


async def test_search_with_no_match_and_huge_input(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    response = await client.get(
        f"/integrasjoner/{integration_id}", params={"q": "%_" + "x" * 5000}, headers=htmx(client)
    )
    assert response.status_code == 200
    assert "Ingen klienter passer søket." in response.text


async def test_names_sort_in_norwegian_order_both_ways(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    ascending = row_names((await client.get(f"/integrasjoner/{integration_id}")).text)
    assert ascending == sorted(ascending, key=sort_key)
    descending = row_names(
        (await client.get(f"/integrasjoner/{integration_id}", params={"sort": "-navn"})).text
    )
    assert descending[:10] == sorted(ascending, key=sort_key, reverse=True)[:10]


async def test_org_number_sorts(client: AsyncTestClient, simulator: Simulator) -> None:
    integration_id = await create_integration(client)
    page = (await client.get(f"/integrasjoner/{integration_id}", params={"sort": "orgnr"})).text
    numbers = re.findall(r'<td class="orgnr">([\d ]+)</td>', page)
    plain = [n.replace(" ", "") for n in numbers]
    assert plain == sorted(plain)
    assert len(plain) == min(50, len(simulator.state.clients_of("demo-regnskapskontor")))


async def test_special_characters_render_as_text(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    page = (await client.get(f"/integrasjoner/{integration_id}")).text
    assert "&lt;" in page and "&amp;" in page
    assert "<script>" not in page.split("</head>")[1].replace("<script src", "")


async def test_rows_load_in_pages(client: AsyncTestClient, simulator: Simulator) -> None:
    for _ in range(60):
        simulator.state.grant_new_client("demo-regnskapskontor")
    integration_id = await create_integration(client)
    total = len(simulator.state.clients_of("demo-regnskapskontor"))
    first = (await client.get(f"/integrasjoner/{integration_id}")).text
    assert len(client_ids(first)) == 50
    more = re.search(r'hx-get="(/integrasjoner/\d+/klienter\?[^"]+)"', first)
    assert more is not None
    second = (await client.get(more.group(1).replace("&amp;", "&"), headers=htmx(client))).text
    ids = client_ids(first) + client_ids(second)
    assert len(ids) == len(set(ids)) == min(total, 100)


async def test_switch_saves_and_returns_the_row_with_counts(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    client_id = client_ids((await client.get(f"/integrasjoner/{integration_id}")).text)[0]
    response = await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "true"},
        headers=htmx(client),
    )
    assert response.status_code == 200
    assert f'<tr id="client-{client_id}"' in response.text
    assert re.search(r'<p id="client-counts"[^>]*hx-swap-oob="true"', response.text)
    assert "Aktive klienter: <strong>1</strong>" in response.text
    page = (await client.get(f"/integrasjoner/{integration_id}")).text
    assert "Aktive klienter: <strong>1</strong>" in page


@pytest.mark.parametrize("switch", ["send_data", "full_sync", "delete_accounts", "active"])
async def test_each_switch_persists_both_ways(client: AsyncTestClient, switch: str) -> None:
    integration_id = await create_integration(client)
    client_id = client_ids((await client.get(f"/integrasjoner/{integration_id}")).text)[1]
    url = f"/integrasjoner/{integration_id}/klienter/{client_id}/{switch}"
    for value in ("true", "false", "true"):
        response = await client.post(url, data={"on": value}, headers=htmx(client))
        button = re.search(rf'<button[^>]*formaction="{url}"[^>]*>', response.text)
        assert button is not None
        assert f'aria-checked="{value}"' in button.group(0)


async def test_unknown_switch_is_not_found(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    client_id = client_ids((await client.get(f"/integrasjoner/{integration_id}")).text)[0]
    response = await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/drop_table",
        data={"on": "true"},
        headers=htmx(client),
    )
    assert response.status_code == 404


async def test_activate_all_then_deactivate_all(
    client: AsyncTestClient, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    total = len(simulator.state.clients_of("demo-regnskapskontor"))
    base = f"/integrasjoner/{integration_id}"
    activated = await client.post(
        f"{base}/aktiver-alle", data={"q": "", "sort": "navn"}, headers=htmx(client)
    )
    assert f"Aktive klienter: <strong>{total}</strong>" in activated.text
    assert f"{total} klienter aktivert." in activated.text
    deactivated = await client.post(f"{base}/deaktiver-alle", data={}, headers=htmx(client))
    assert f"Inaktive klienter: <strong>{total}</strong>" in deactivated.text


async def test_bulk_actions_act_on_the_clients_shown_and_say_so(
    client: AsyncTestClient, settings: Settings, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    base = f"/integrasjoner/{integration_id}"
    names = [c.name for c in simulator.state.clients_of("demo-regnskapskontor")]
    word = next(w for w in ("Bygg", "AS") if 1 < sum(w in n for n in names) < len(names))
    shown = [n for n in names if word.casefold() in n.casefold()]
    table = await client.get(base, params={"q": word}, headers=htmx(client))
    # The buttons name what they act on, and ask before acting with the count.
    assert f"Aktiver {len(shown)} viste klienter" in table.text
    assert (
        f"Aktivere de {len(shown)} viste klientene? De som alt er aktive, endres ikke."
        in table.text
    )
    assert "Aktiver alle" not in table.text
    activated = await client.post(
        f"{base}/aktiver-alle", data={"q": word, "sort": "navn"}, headers=htmx(client)
    )
    assert f"{len(shown)} klienter aktivert (av klientene som vises)." in activated.text
    active = {name for (name,) in await query(settings, "SELECT name FROM client WHERE active")}
    assert active == set(shown)
    # Unfiltered, the guide's own labels.
    page = await client.get(base)
    assert "Aktiver alle" in page.text and "Deaktiver alle" in page.text


async def test_refresh_brings_in_new_clients_marked_new(
    client: AsyncTestClient, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    company = simulator.state.grant_new_client("demo-regnskapskontor")
    response = await client.post(
        f"/integrasjoner/{integration_id}/oppdater", data={}, headers=htmx(client)
    )
    assert "Klientlisten er oppdatert: 1 ny klient." in response.text
    assert f'href="/integrasjoner/{integration_id}?status=ny">Vis de nye klientene' in response.text
    found = await client.get(
        f"/integrasjoner/{integration_id}",
        params={"q": company.organization_number},
        headers=htmx(client),
    )
    assert '<span class="badge new">Ny</span>' in found.text


async def test_refresh_marks_clients_the_key_no_longer_reaches(
    client: AsyncTestClient, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    lost = simulator.state.clients_of("demo-regnskapskontor")[0]
    simulator.state.revoke_client("demo-regnskapskontor", lost.id)
    response = await client.post(
        f"/integrasjoner/{integration_id}/oppdater", data={}, headers=htmx(client)
    )
    assert "1 kan ikke lenger nås med nøkkelen" in response.text
    row = await client.get(
        f"/integrasjoner/{integration_id}",
        params={"q": lost.organization_number},
        headers=htmx(client),
    )
    assert "Ingen tilgang" in row.text


async def test_refresh_with_a_revoked_key_explains_the_fix(
    client: AsyncTestClient, simulator: Simulator
) -> None:
    integration_id = await create_integration(client)
    simulator.state.revoke_key("demo-regnskapskontor")
    response = await client.post(
        f"/integrasjoner/{integration_id}/oppdater", data={}, headers=htmx(client)
    )
    assert "Endre system" in response.text
    assert 'role="alert"' in response.text


async def test_change_system_keeps_clients_and_settings(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    base = f"/integrasjoner/{integration_id}"
    client_id = client_ids((await client.get(base)).text)[0]
    await client.post(
        f"{base}/klienter/{client_id}/active", data={"on": "true"}, headers=htmx(client)
    )
    response = await client.post(
        f"{base}/endre",
        data={"key": "demo-regnskapskontor", "description": "Nytt navn"},
        headers=htmx(client),
    )
    assert response.headers["HX-Redirect"] == base
    page = (await client.get(base)).text
    assert "Tripletex - Nytt navn" in page
    assert "Aktive klienter: <strong>1</strong>" in page


async def test_change_system_refuses_a_wrong_key(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    response = await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"key": "ikke-en-nokkel", "description": "Klienter"},
        headers=htmx(client),
    )
    assert response.status_code == 422
    assert "Tripletex godtok ikke brukernøkkelen" in response.text


async def test_delete_asks_first_then_removes_everything(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client, description="Skal slettes")
    confirm = await client.get(f"/integrasjoner/{integration_id}/slett")
    assert "Vil du slette" in confirm.text and "Tripletex - Skal slettes" in confirm.text
    response = await client.post(
        f"/integrasjoner/{integration_id}/slett",
        data={"_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert (await client.get(f"/integrasjoner/{integration_id}")).status_code == 404
    listing = (await client.get("/integrasjoner")).text
    assert "«Tripletex - Skal slettes» er slettet" in listing  # said once, then gone
    assert f'href="/integrasjoner/{integration_id}"' not in listing
    assert "Skal slettes" not in (await client.get("/integrasjoner")).text


async def test_switch_works_without_javascript(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)
    client_id = client_ids((await client.get(f"/integrasjoner/{integration_id}")).text)[0]
    response = await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/active",
        data={"on": "true", "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/integrasjoner/{integration_id}"
    page = (await client.get(response.headers["location"])).text
    assert "Aktive klienter: <strong>1</strong>" in page


async def test_back_button_after_a_history_cache_miss_gets_the_whole_page(
    client: AsyncTestClient,
) -> None:
    integration_id = await create_integration(client)
    url = f"/integrasjoner/{integration_id}?q=a"
    fragment = await client.get(url, headers=htmx(client))
    assert "<html" not in fragment.text
    restore = {**htmx(client), "HX-History-Restore-Request": "true"}
    page = await client.get(url, headers=restore)
    assert "<html" in page.text and "Klienter" in page.text


async def test_stale_clients_are_filtered_and_sorted_by_age_and_status(
    client: AsyncTestClient, settings: Settings
) -> None:
    integration_id = await create_integration(client)
    base = f"/integrasjoner/{integration_id}"
    ids = [i for (i,) in await query(settings, "SELECT id FROM client ORDER BY id")][:4]
    fresh, old, older, failing = ids
    now = "CURRENT_TIMESTAMP"
    await execute(
        settings,
        f"UPDATE client SET active = TRUE, sync_status = 'ok', synced_at = {now} "
        f"WHERE id IN ({fresh}, {old}, {older}, {failing})",
    )
    for client_id, hours in ((old, 30), (older, 50)):
        moment = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")
        await execute(settings, f"UPDATE client SET synced_at = '{moment}' WHERE id = {client_id}")
    await execute(
        settings,
        f"UPDATE client SET sync_status = 'no_access', sync_error = 'x' WHERE id = {failing}",
    )

    # Switched on a minute ago and not synced yet: waiting, not stale. Switched on a day and
    # more ago and still never synced: stale.
    waiting, stuck = [i for (i,) in await query(settings, "SELECT id FROM client ORDER BY id")][4:6]
    day_ago = (datetime.now(UTC) - timedelta(hours=30)).strftime("%Y-%m-%d %H:%M:%S")
    await execute(settings, f"UPDATE client SET active = TRUE WHERE id = {waiting}")
    await execute(
        settings, f"UPDATE client SET active = TRUE, updated_at = '{day_ago}' WHERE id = {stuck}"
    )
    stale = await client.get(base, params={"status": "ikke-oppdatert"}, headers=htmx(client))
    rows = re.findall(r'<tr id="client-(\d+)"', stale.text)
    assert sorted(map(int, rows)) == sorted([old, older, stuck])
    assert stale.text.count("Ikke oppdatert siste 24 timer</span>") == 2  # the synced ones

    by_age = await client.get(
        base, params={"status": "ikke-oppdatert", "sort": "oppdatert"}, headers=htmx(client)
    )
    assert [int(i) for i in re.findall(r'<tr id="client-(\d+)"', by_age.text)] == [
        stuck,
        older,
        old,
    ]

    by_status = await client.get(base, params={"sort": "status"}, headers=htmx(client))
    order = [int(i) for i in re.findall(r'<tr id="client-(\d+)"', by_status.text)]
    assert order[0] == failing  # what needs attention first; the inactive last
    assert set(order[1:6]) == {fresh, old, older, waiting, stuck}
    assert "Ingen tilgang</span>" in by_status.text

    # A client without access is switched on but not counted as active.
    counts = await client.get(base)
    assert "Aktive klienter: <strong>5</strong>" in counts.text
    assert "Uten tilgang: <strong>1</strong>" in counts.text


async def test_one_overview_lists_the_clients_needing_attention_across_integrations(
    client: AsyncTestClient, settings: Settings
) -> None:
    first = await create_integration(client, description="Første")
    second = await create_integration(client, key="demo-eget-selskap", description="Andre")
    rows = await query(settings, "SELECT id, integration_id, name FROM client ORDER BY id")
    failing = next(r for r in rows if r[1] == first)
    stale = next(r for r in rows if r[1] == second)
    fine = next(r for r in rows if r[1] == first and r[0] != failing[0])
    await execute(
        settings,
        "UPDATE client SET active = TRUE, sync_status = 'ok', synced_at = CURRENT_TIMESTAMP "
        f"WHERE id IN ({failing[0]}, {stale[0]}, {fine[0]})",
    )
    await execute(
        settings,
        "UPDATE client SET sync_status = 'no_access', sync_error = 'Gi tilgang i Tripletex' "
        f"WHERE id = {failing[0]}",
    )
    old = (datetime.now(UTC) - timedelta(hours=30)).strftime("%Y-%m-%d %H:%M:%S")
    await execute(settings, f"UPDATE client SET synced_at = '{old}' WHERE id = {stale[0]}")

    page = (await client.get("/integrasjoner/oppfolging")).text
    listed = re.findall(r'href="/integrasjoner/\d+/klienter/(\d+)/oversikt"', page)
    assert [int(i) for i in listed] == [failing[0], stale[0]]  # what must be fixed first
    assert "Gi tilgang i Tripletex" in page and "Ikke oppdatert siste 24 timer" in page
    assert "2 klienter" in page
    assert "Tripletex - Første" in page and "Tripletex - Andre" in page
    assert fine[2] not in page
    # The integrations list leads there.
    listing = (await client.get("/integrasjoner")).text
    assert 'href="/integrasjoner/oppfolging">2 klienter trenger oppfølging' in listing
