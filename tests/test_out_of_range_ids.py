"""Numbers in URLs that no database column can hold: the same 404 as a missing row (ids) or a
400 naming the parameter (offsets), never a 500 (OverflowError on SQLite, DataError on
PostgreSQL's 32-bit integer columns)."""

from __future__ import annotations

import re

import pytest
from litestar.testing import AsyncTestClient

from models import NotificationEndpoint
from services.db import create_engine, create_session_factory, open_session
from services.settings import Settings
from tests import api_support
from tests.api_support import bearer, create_token
from tests.conftest import create_integration, csrf, htmx, query

pytestmark = pytest.mark.anyio
api = api_support.api
HUGE = 10**30
PAST_INT4 = 2**31  # fits SQLite, not PostgreSQL's integer


async def add_endpoint(settings: Settings) -> None:
    """Office A's webhook, straight into the database: the delivery routes need one."""
    ((office_id,),) = await query(settings, "select id from office")
    engine = create_engine(settings.database_url)
    try:
        async with open_session(create_session_factory(engine)) as db:
            db.add(
                NotificationEndpoint(
                    office_id=office_id, url="https://hooks.example.no/erp", secret_ciphertext="-"
                )
            )
            await db.commit()
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/integrasjoner/{n}", id="integration"),
        pytest.param("GET", "/integrasjoner/{n}/endre", id="integration-edit"),
        pytest.param("GET", "/integrasjoner/{i}/klienter/{n}", id="client-row"),
        pytest.param("POST", "/integrasjoner/{i}/klienter/{n}/active", id="switch"),
        pytest.param("GET", "/integrasjoner/{i}/klienter/{n}/oversikt", id="overview"),
        pytest.param("POST", "/innstillinger/api-nokler/{n}/trekk-tilbake", id="token-revoke"),
        pytest.param(
            "POST", "/innstillinger/varsler/leveranser/{n}/prov-igjen", id="delivery-retry"
        ),
    ],
)
async def test_an_id_out_of_range_is_the_404_of_a_missing_one(
    client: AsyncTestClient, settings: Settings, method: str, path: str
) -> None:
    integration_id = await create_integration(client)
    await add_endpoint(settings)
    form = {"_csrf_token": csrf(client), "on": "true"}

    for number in (999_999, PAST_INT4, HUGE):  # missing, past PostgreSQL's integer, past 64 bits
        url = path.format(i=integration_id, n=number)
        response = await client.request(method, url, headers=htmx(client), data=form)
        assert response.status_code == 404, (number, response.text[:200])
        assert "Siden finnes ikke" in response.text


async def test_an_offset_out_of_range_is_a_400_that_names_it(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)

    for path in (f"/integrasjoner/{integration_id}", f"/integrasjoner/{integration_id}/klienter"):
        for offset in (str(HUGE), str(PAST_INT4), "-1"):
            response = await client.get(path, params={"offset": offset})
            assert response.status_code == 400, (path, offset)
            message = re.search(r"<p>(.*?)</p>", response.text)
            assert message and message[1] == "«offset» må være et heltall fra 0 til 2147483647."


async def test_the_largest_offset_in_range_is_an_empty_page(client: AsyncTestClient) -> None:
    integration_id = await create_integration(client)

    response = await client.get(
        f"/integrasjoner/{integration_id}/klienter", params={"offset": str(2**31 - 1)}
    )

    assert response.status_code == 200
    assert '<tr id="client-' not in response.text


async def test_an_api_client_id_out_of_range_is_404(
    client: AsyncTestClient, api: AsyncTestClient
) -> None:
    token = await create_token(client)

    for suffix in ("", "/accounts", "/balances"):
        for number in (PAST_INT4, HUGE):
            response = await api.get(f"/api/v1/clients/{number}{suffix}", headers=bearer(token))
            assert response.status_code == 404, (number, suffix)
            assert response.json()["error"] == "not_found"


def test_every_route_with_an_id_in_its_path_bounds_it(settings: Settings) -> None:
    """The guard sits on the routes with ids, not app-wide (each guard call copies the route
    handler: 40 % more CPU per webhook callback): none of them may lack it."""
    from app import create_app
    from routes.params import ids_in_range

    unguarded = [
        f"{sorted(handler.http_methods)} {route.path}"
        for route in create_app(settings).routes
        if ":int}" in route.path
        for handler in getattr(route, "route_handlers", [])
        if handler.http_methods != {"OPTIONS"}  # Litestar's own answer; reads no row
        # Litestar keeps each guard wrapped in an AsyncCallable (its .func).
        if ids_in_range not in [getattr(g, "func", g) for g in handler.resolve_guards()]
    ]
    assert unguarded == []
