"""SAF-T files through the app: Ny integrasjon for files, upload on the integration's page
(raw body, streamed), the client it makes in the table and on its page, the findings shown,
and the push API of local systems with its answers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from services.balances import format_amount
from services.connectors.saft import SaftSystem
from services.saft.uploads import UploadRefused, receive
from services.settings import Settings
from tests.api_support import api, bearer, create_token, office_b  # noqa: F401
from tests.conftest import create_integration, csrf, htmx, query
from tests.saft_files import CLOSING_SHIFT, Break, random_books, write_saft

pytestmark = pytest.mark.anyio


async def create_saft_integration(client: AsyncTestClient, description: str = "Lokale") -> int:
    response = await client.post(
        "/integrasjoner/ny",
        data={"system": "saft", "description": description, "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


async def upload(client: AsyncTestClient, integration_id: int, path: Path, name: str = "saft.xml"):
    return await client.post(
        f"/integrasjoner/{integration_id}/saft-importer",
        params={"filnavn": name},
        content=path.read_bytes(),  # noqa: ASYNC240 (a small test file)
        headers={**htmx(client), "Content-Type": "application/xml"},
    )


async def test_ny_integrasjon_offers_saft_files_and_needs_no_key(client: AsyncTestClient) -> None:
    form = await client.get("/integrasjoner/ny")
    assert "Lokale og andre regnskapssystemer (SAF-T-fil)" in form.text
    assert "Last ned guide for SAF-T" in form.text

    integration_id = await create_saft_integration(client, "Visma-klienter")

    page = await client.get(f"/integrasjoner/{integration_id}")
    assert "SAF-T-fil - Visma-klienter" in page.text
    assert "Last opp SAF-T-filer" in page.text
    assert "Oppdater klientliste" not in page.text and "Aktiver alle" not in page.text
    guide = await client.get("/guide/saft")
    assert guide.status_code == 200
    assert "Visma Business" in guide.text and "curl" in guide.text

    # What only fetched systems have is not there for files, not even by a hand-made POST.
    for action in ("oppdater", "aktiver-alle", "deaktiver-alle"):
        response = await client.post(
            f"/integrasjoner/{integration_id}/{action}", headers=htmx(client)
        )
        assert response.status_code == 404, action

    # Endre system: only the description (there is no key); Slett system forgets it all.
    edit = await client.get(f"/integrasjoner/{integration_id}/endre")
    assert edit.status_code == 200 and 'name="key"' not in edit.text
    refused = await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"description": "kari@kontoret.no", "_csrf_token": csrf(client)},
    )
    assert refused.status_code == 422 and "e-postadresse" in refused.text
    saved = await client.post(
        f"/integrasjoner/{integration_id}/endre",
        data={"description": "Visma Global", "_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert "SAF-T-fil - Visma Global" in (await client.get("/integrasjoner")).text
    deleted = await client.post(
        f"/integrasjoner/{integration_id}/slett",
        data={"_csrf_token": csrf(client)},
        follow_redirects=False,
    )
    assert deleted.status_code == 303
    assert (await client.get(f"/integrasjoner/{integration_id}")).status_code == 404


async def test_an_uploaded_file_makes_its_client_with_saldobalanse_and_warnings(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    written = write_saft(
        tmp_path / "f.xml",
        random_books(year=2021, seed=4),
        breakage=Break.CLOSING_MISMATCH,
        company_name="Fjordbakst & Sønn AS",
    )

    response = await upload(client, integration_id, written.path, "Fjordbakst 2021.xml")

    assert response.status_code == 201, response.text
    assert "Fjordbakst &amp; Sønn AS" in response.text
    assert "januar–desember 2021" in response.text
    assert "20 kontoer" in response.text and f"{written.transaction_count} bilag" in response.text
    assert "1 avvik i filen" in response.text
    assert response.headers["hx-trigger"] == "saft-imported"
    table = await client.get(f"/integrasjoner/{integration_id}")
    assert "Fjordbakst &amp; Sønn AS" in table.text and "987 654 325" in table.text
    assert "Fjordbakst 2021.xml · januar–desember 2021" in table.text
    assert "Klienter: <strong>1</strong>" in table.text
    client_id = int(re.search(r"/klienter/(\d+)/oversikt", table.text).group(1))  # type: ignore[union-attr]

    # A year far outside the sync window is served: the file's years are kept.
    page = await client.get(f"/integrasjoner/{integration_id}/klienter/{client_id}/oversikt")
    assert page.status_code == 200
    assert "Avvik i filen" in page.text
    first = min(written.openings)
    assert f"Konto {first}:" in page.text
    assert f"differanse {format_amount(CLOSING_SHIFT)}" in page.text
    assert "desember 2021" in page.text
    assert "Importhistorikk" in page.text and "Fjordbakst 2021.xml" in page.text
    assert "RF-1167" in page.text  # 1.30's grouping per account
    closing = written.closings[first] - CLOSING_SHIFT  # the saldobalanse: not adjusted
    year = await client.get(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/oversikt",
        params={"aar": "2021", "fra": "1", "til": "12"},
    )
    assert "De importerte filene for 2021 dekker fra" not in year.text  # the whole year
    row = re.search(rf'<tr data-account="{first}">.*?</tr>', year.text, re.S)
    assert row and format_amount(closing) in row.group(0)
    assert await query(settings, "SELECT count(*) FROM saft_finding") == [(1,)]


async def test_a_refused_file_says_why_and_stores_nothing(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    bad = write_saft(tmp_path / "bad.xml", random_books(), breakage=Break.XSD_INVALID)

    response = await upload(client, integration_id, bad.path, "feil.xml")

    assert response.status_code == 422
    assert "Avvist" in response.text and f"linje {bad.broken_line}" in response.text
    assert "Ingenting fra filen er lagret" in response.text
    assert await query(settings, "SELECT count(*) FROM client") == [(0,)]


async def test_empty_and_too_large_uploads_are_refused(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    empty = tmp_path / "empty.xml"
    empty.write_bytes(b"")
    response = await upload(client, integration_id, empty)
    assert response.status_code == 422 and "Filen er tom" in response.text

    limit = settings.system("saft").max_upload_bytes  # type: ignore[attr-defined]
    big = tmp_path / "big.xml"
    with big.open("wb") as stream:
        stream.truncate(limit + 1)
    response = await upload(client, integration_id, big)
    assert response.status_code == 413
    assert "større enn grensen på 50,0 MB" in response.text
    assert list((tmp_path / "uploads").iterdir()) == []  # nothing left on disk


async def test_uploads_only_to_the_offices_own_saft_integrations(
    client: AsyncTestClient,
    office_b: AsyncTestClient,  # noqa: F811
    tmp_path: Path,
) -> None:
    saft_id = await create_saft_integration(client)
    tripletex_id = await create_integration(client)
    written = write_saft(tmp_path / "f.xml", random_books())

    assert (await upload(office_b, saft_id, written.path)).status_code == 404
    assert (await upload(client, tripletex_id, written.path)).status_code == 404
    assert (await upload(client, saft_id, written.path)).status_code == 201


async def test_local_systems_push_files_through_the_api(
    client: AsyncTestClient,
    api: AsyncTestClient,  # noqa: F811
    settings: Settings,
    tmp_path: Path,
) -> None:
    integration_id = await create_saft_integration(client)
    tripletex_id = await create_integration(client)
    token = await create_token(client)
    written = write_saft(
        tmp_path / "f.xml", random_books(year=2024), breakage=Break.UNKNOWN_ACCOUNT
    )
    headers = {**bearer(token), "Content-Type": "application/xml"}
    url = f"/api/v1/integrations/{integration_id}/saft-imports"

    response = await api.post(
        url, content=written.path.read_bytes(), headers=headers, params={"filename": "natt.xml"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "imported" and body["file_name"] == "natt.xml"
    assert (body["first_month"], body["last_month"]) == ("2024-01", "2024-12")
    assert body["org_number"] == "987654325" and body["lines"] == written.line_count
    [warning] = body["warnings"]
    assert warning["kind"] == "unknown_account" and warning["account"] == "9999"
    assert Decimal(warning["movements"]) == Decimal("77.00")
    # The client is an API client like any other (SEND DATA on from the start).
    clients = (await api.get("/api/v1/clients", headers=bearer(token))).json()["data"]
    assert [c["id"] for c in clients if c["system"] == "saft"] == [body["client_id"]]
    balances = await api.get(
        f"/api/v1/clients/{body['client_id']}/balances",
        params={"from": "2024-01", "to": "2024-12"},
        headers=bearer(token),
    )
    assert balances.status_code == 200, balances.text
    lines = {line["account_number"]: line for line in balances.json()["lines"]}
    assert Decimal(lines[9999]["movement"]) == Decimal("77.00")  # the unknown account
    accounts = await api.get(f"/api/v1/clients/{body['client_id']}/accounts", headers=bearer(token))
    grouped = accounts.json()["data"][0]
    assert (grouped["grouping_category"], grouped["grouping_code"]) == ("RF-1167", "1000")
    again = await api.post(url, content=written.path.read_bytes(), headers=headers)
    assert again.status_code == 201 and again.json()["status"] == "unchanged"
    read = await api.get(f"/api/v1/saft-imports/{body['id']}", headers=bearer(token))
    assert read.json()["warnings"] == body["warnings"]

    bad = write_saft(tmp_path / "bad.xml", random_books(), breakage=Break.NOT_WELL_FORMED)
    refused = await api.post(url, content=bad.path.read_bytes(), headers=headers)
    assert refused.status_code == 422 and refused.json()["status"] == "refused"
    assert refused.json()["problems"]
    elsewhere = f"/api/v1/integrations/{tripletex_id}/saft-imports"
    assert (await api.post(elsewhere, content=b"<x/>", headers=headers)).status_code == 404
    wrong_type = {**bearer(token), "Content-Type": "application/json"}
    assert (await api.post(url, content=b"{}", headers=wrong_type)).status_code == 415
    assert (await api.post(url, content=b"<x/>")).status_code == 401


async def test_uploads_stream_past_the_default_body_limit_and_stop_at_ours(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    # Above Litestar's default body limit (10 MB): streamed to disk and imported.
    large = write_saft(tmp_path / "large.xml", random_books(seed=8), lines_per_movement=100)
    assert large.path.stat().st_size > 12 * 1024 * 1024
    response = await upload(client, integration_id, large.path)
    assert response.status_code == 201, response.text
    assert f"{large.line_count} posteringslinjer" in response.text or "Importerer" in response.text


async def test_an_upload_without_a_declared_size_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    system = SaftSystem(max_upload_bytes=1_000_000, upload_dir=tmp_path / "uploads")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for _ in range(100):
            yield b"<!-- padding -->" * 4096

    with pytest.raises(UploadRefused) as refused:
        await receive(chunked(), system)
    assert refused.value.too_large and "grensen på 0,9 MB" in refused.value.message
    assert list((tmp_path / "uploads").iterdir()) == []


async def test_an_upload_needs_the_csrf_header_and_an_xml_body(
    client: AsyncTestClient, settings: Settings, tmp_path: Path
) -> None:
    integration_id = await create_saft_integration(client)
    written = write_saft(tmp_path / "f.xml", random_books())
    url = f"/integrasjoner/{integration_id}/saft-importer"

    no_token = await client.post(
        url, content=written.path.read_bytes(), headers={"Content-Type": "application/xml"}
    )
    # A form body is refused before anything reads it (the CSRF check would read it whole).
    form = await client.post(
        url,
        content=b"_csrf_token=x&" + b"a" * 100_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert no_token.status_code == 403
    assert form.status_code == 415
    assert await query(settings, "SELECT count(*) FROM saft_import") == [(0,)]


async def test_another_office_sees_no_import_and_send_data_off_hides_its_findings(
    client: AsyncTestClient,
    office_b: AsyncTestClient,  # noqa: F811
    api: AsyncTestClient,  # noqa: F811
    tmp_path: Path,
) -> None:
    integration_id = await create_saft_integration(client)
    written = write_saft(tmp_path / "f.xml", random_books(), breakage=Break.CLOSING_MISMATCH)
    response = await upload(client, integration_id, written.path)
    import_id = int(re.search(r'id="import-(\d+)"', response.text).group(1))  # type: ignore[union-attr]
    ours, theirs = await create_token(client), await create_token(office_b)
    status_url = f"/integrasjoner/{integration_id}/saft-importer/{import_id}"

    assert (await client.get(status_url)).status_code == 200
    assert (await office_b.get(status_url)).status_code == 404
    api_url = f"/api/v1/saft-imports/{import_id}"
    assert (await api.get(api_url, headers=bearer(ours))).status_code == 200
    assert (await api.get(api_url, headers=bearer(theirs))).status_code == 404

    table = await client.get(f"/integrasjoner/{integration_id}")
    client_id = int(re.search(r"/klienter/(\d+)/oversikt", table.text).group(1))  # type: ignore[union-attr]
    await client.post(
        f"/integrasjoner/{integration_id}/klienter/{client_id}/send_data",
        data={"on": "false"},
        headers=htmx(client),
    )
    assert (await api.get(api_url, headers=bearer(ours))).status_code == 404


async def test_months_before_the_first_file_say_so(client: AsyncTestClient, tmp_path: Path) -> None:
    integration_id = await create_saft_integration(client)
    half = write_saft(tmp_path / "h2.xml", random_books(year=2024, seed=41, months=range(7, 13)))
    text = half.path.read_text(encoding="utf-8")
    half.path.write_text(text.replace("<PeriodStart>1<", "<PeriodStart>7<"), encoding="utf-8")
    assert (await upload(client, integration_id, half.path)).status_code == 201
    table = await client.get(f"/integrasjoner/{integration_id}")
    client_id = int(re.search(r"/klienter/(\d+)/oversikt", table.text).group(1))  # type: ignore[union-attr]
    page = f"/integrasjoner/{integration_id}/klienter/{client_id}/oversikt"

    march = await client.get(page, params={"aar": "2024", "fra": "3", "til": "3"})
    august = await client.get(page, params={"aar": "2024", "fra": "8", "til": "8"})

    assert "De importerte filene for 2024 dekker fra juli" in march.text
    assert "De importerte filene for 2024 dekker fra" not in august.text
