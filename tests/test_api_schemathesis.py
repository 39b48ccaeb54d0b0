"""Property-based testing of the API against its own OpenAPI schema (schemathesis): the app
served on a loopback port, a synced client behind a real token; no generated request may
get a server error or a response the schema does not describe."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase

from services.ratelimit import API_LIMITER
from services.settings import Settings
from tests.api_support import TOKEN
from tests.conftest import PASSWORD, Simulator, add_user, free_port
from tests.processes import served_in_thread
from tests.sync_support import sync_engine

EXAMPLES = 30  # per operation and mode: well under a minute in all
# "A schema-valid request must be accepted" cannot hold for opaque cursors and for periods
# (a `month` of the right shape in a year that is not kept, or `month` and `date` at once):
# those are 400 by design. "A schema-violating request must be refused" cannot hold for
# unknown query parameters, which the API ignores, as most do. Every other check runs.
NOT_EXPRESSIBLE = {
    schemathesis.GenerationMode.POSITIVE: [schemathesis.checks.positive_data_acceptance],
    schemathesis.GenerationMode.NEGATIVE: [schemathesis.checks.negative_data_rejection],
}


def _form(http: httpx.Client, path: str, data: dict[str, str]) -> httpx.Response:
    http.get(path)
    return http.post(path, data={**data, "_csrf_token": http.cookies.get("erp_csrf") or ""})


@pytest.fixture
def served(settings: Settings, simulator: Simulator) -> Iterator[tuple[str, str, int]]:
    """The app on a real port with an office, an integration, one synced client and a token;
    yields (base URL, token, client id)."""
    from app import create_app

    asyncio.run(add_user(settings, "regnskap@kontor-a.no", "Kontor A AS"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with served_in_thread(create_app(settings), port, start_seconds=15):
        with httpx.Client(base_url=url, follow_redirects=False) as http:
            http.get("/login")
            login = _form(http, "/login", {"email": "regnskap@kontor-a.no", "password": PASSWORD})
            assert login.status_code == 303
            created = _form(
                http, "/integrasjoner/ny", {"key": "demo-regnskapskontor", "description": "A"}
            )
            assert created.status_code == 303, created.text
            (token,) = TOKEN.findall(
                _form(
                    http,
                    "/innstillinger/api-nokler",
                    {"name": "Schemathesis", "reads_audit": "on"},  # /audit too
                ).text
            )
            page = http.get(created.headers["location"]).text
            client_id = int(re.findall(r'<tr id="client-(\d+)"', page)[0])

        async def sync() -> None:
            async with sync_engine(settings, simulator) as engine:
                assert await engine.sync_client(client_id, trigger="manual") == "ok"

        asyncio.run(sync())
        yield url, token, client_id


def test_generated_requests_get_no_server_error_and_match_the_schema(
    served: tuple[str, str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, token, client_id = served
    monkeypatch.setattr(API_LIMITER, "rate", 1e9)
    monkeypatch.setattr(API_LIMITER, "burst", 10**9)
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/schema/openapi.json")
    auth = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 8
    calls = [0]

    def explore(operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode) -> None:
        excluded = NOT_EXPRESSIBLE[mode]

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=url, headers=auth, excluded_checks=excluded)
            calls[0] += 1
            positive = mode == schemathesis.GenerationMode.POSITIVE
            if positive and "client_id" in (case.path_parameters or {}):
                case.path_parameters["client_id"] = client_id  # the one that exists
                case.call_and_validate(base_url=url, headers=auth, excluded_checks=excluded)
                calls[0] += 1

        check()

    for operation in operations:
        explore(operation, schemathesis.GenerationMode.POSITIVE)
        explore(operation, schemathesis.GenerationMode.NEGATIVE)
    assert calls[0] >= len(operations) * 20
