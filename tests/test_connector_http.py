"""The connectors' HTTP layers on httpx.MockTransport: auth, retries and pacing, errors by
status, the metrics hook. No simulator, no database, milliseconds; the simulator stays the
contract test (tests/test_simulator*.py, tests/test_sync_*.py).

These pin what the Tripletex client on aiohttp did before it moved onto httpx's API.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import date

import httpx
import pytest

from services.connectors.base import (
    AccessDenied,
    CompanyRef,
    ErpError,
    ErpUnavailable,
    KeyKind,
    KeyRejected,
    RateLimited,
    RequestStats,
    request_stats,
)
from services.connectors.http import ApiClient, ErrorMap, RetryPolicy, count_attempts
from services.connectors.tripletex import SessionToken, TripletexClient, TripletexConnector
from services.logging_setup import install_log_context
from services.metrics import Metrics

pytestmark = [pytest.mark.anyio, pytest.mark.database_agnostic]

BASE = "https://tripletex.test/v2"


class Recorder:
    """A MockTransport that answers from a list, last answer repeated, and keeps requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(body: object, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


def tripletex(
    recorder: Recorder, metrics: Metrics | None = None, max_retries: int = 2
) -> TripletexClient:
    return TripletexClient(
        recorder.transport,
        base_url=BASE,
        consumer_token="consumer-secret",
        max_retries=max_retries,
        backoff=0.001,
        today=lambda: date(2026, 11, 29),
        metrics=metrics,
    )


def session(token: str = "session-token") -> SessionToken:
    return SessionToken(token, date(2026, 12, 2))


def requests_counted(metrics: Metrics, method: str, status: int | str) -> float:
    labels = {"system": "tripletex", "method": method, "status": str(status)}
    return metrics.registry.get_sample_value("erp_system_requests_total", labels) or 0.0


async def test_session_is_made_with_both_tokens_and_used_as_basic_auth_per_company() -> None:
    recorder = Recorder(ok({"value": {"token": "session-token"}}), ok({"values": []}))
    client = tripletex(recorder)

    made = await client.session_for("employee-secret")
    await client.get(made, "/balanceSheet", company_id=4711, params={"dateFrom": "2026-01-01"})

    create, fetch = recorder.requests
    assert create.method == "PUT"
    assert create.url.path == "/v2/token/session/:create"
    assert dict(create.url.params) == {
        "consumerToken": "consumer-secret",
        "employeeToken": "employee-secret",
        "expirationDate": "2026-12-02",
    }
    assert "Authorization" not in create.headers
    assert fetch.url.path == "/v2/balanceSheet"
    assert fetch.url.params["dateFrom"] == "2026-01-01"
    assert (
        fetch.headers["Authorization"]
        == "Basic " + base64.b64encode(b"4711:session-token").decode()
    )


async def test_writes_send_json_and_empty_answers_are_none() -> None:
    recorder = Recorder(ok({"value": {"id": 9}}), httpx.Response(204))
    client = tripletex(recorder)

    created = await client.send(session(), "POST", "/event/subscription", body={"event": "x"})
    removed = await client.send(session(), "DELETE", "/event/subscription/9")

    assert created == {"value": {"id": 9}}
    assert removed is None
    assert json.loads(recorder.requests[0].content) == {"event": "x"}
    assert recorder.requests[1].method == "DELETE"


async def test_a_429_holds_every_request_of_the_key_until_the_reset_then_retries() -> None:
    limited = httpx.Response(429, headers={"X-Rate-Limit-Reset": "0.05"})
    recorder = Recorder(limited, ok({"values": [1]}))
    metrics = Metrics()
    stats = RequestStats()
    token = session()

    reset = request_stats.set(stats)
    try:
        body = await tripletex(recorder, metrics).get(token, "/ledger/account")
    finally:
        request_stats.reset(reset)

    assert body == {"values": [1]}
    assert len(recorder.requests) == 2
    # The key's budget was held, so every request with the key waits, not just this one.
    assert token.budget.waited >= 0.04
    assert (stats.requests, stats.retries) == (2, 1)
    assert requests_counted(metrics, "GET", 429) == 1
    assert requests_counted(metrics, "GET", 200) == 1


async def test_rate_headers_spread_the_last_of_the_budget_over_the_period() -> None:
    # 10 of 100 left, 0.1 s to the reset: 0.1 / (10 - 2) s between requests from now on.
    low = {"X-Rate-Limit-Limit": "100", "X-Rate-Limit-Remaining": "10", "X-Rate-Limit-Reset": "0.1"}
    recorder = Recorder(ok({"values": []}, **low))
    client = tripletex(recorder)
    token = session()

    for _ in range(3):
        await client.get(token, "/ledger/account")

    assert len(recorder.requests) == 3
    assert token.budget.waited >= 0.01  # two waits of 0.0125 s, less the time between


async def test_a_429_after_the_retries_is_rate_limited() -> None:
    recorder = Recorder(httpx.Response(429, json={"message": "Too many"}))

    with pytest.raises(RateLimited) as raised:
        await tripletex(recorder).get(session(), "/ledger/account")

    assert raised.value.status == 429
    assert len(recorder.requests) == 3  # the first and two retries


async def test_server_errors_are_retried_then_unavailable_with_tripletex_request_id() -> None:
    failing = httpx.Response(
        503, json={"message": "Maintenance"}, headers={"x-tlx-request-id": "req-1"}
    )
    recorder = Recorder(failing)
    metrics = Metrics()

    with pytest.raises(ErpUnavailable) as raised:
        await tripletex(recorder, metrics).get(session(), "/ledger/account")

    assert str(raised.value) == "Tripletex 503: Maintenance"
    assert (raised.value.status, raised.value.request_id) == (503, "req-1")
    assert requests_counted(metrics, "GET", 503) == 3


async def test_a_server_error_that_clears_is_not_an_error() -> None:
    recorder = Recorder(httpx.Response(502), ok({"values": [1]}))

    assert await tripletex(recorder).get(session(), "/ledger/account") == {"values": [1]}


async def test_unreachable_is_retried_then_unavailable_and_counted_as_error() -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    metrics = Metrics()

    with pytest.raises(ErpUnavailable) as raised:
        await tripletex(recorder, metrics).get(session(), "/ledger/account")

    assert str(raised.value) == "Tripletex unreachable: ConnectError"
    assert raised.value.status is None
    assert requests_counted(metrics, "GET", "error") == 3


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, KeyRejected), (403, AccessDenied), (404, ErpError), (422, ErpError)],
)
async def test_client_errors_map_by_status_without_retries(
    status: int, kind: type[ErpError]
) -> None:
    body = {"developerMessage": "No access", "message": None}
    recorder = Recorder(httpx.Response(status, json=body))

    with pytest.raises(ErpError) as raised:
        await tripletex(recorder).get(session(), "/ledger/account")

    assert type(raised.value) is kind
    assert str(raised.value) == f"Tripletex {status}: No access"
    assert len(recorder.requests) == 1


async def test_an_unreadable_error_body_is_quoted() -> None:
    recorder = Recorder(httpx.Response(400, content=b"<html>Bad</html>"))

    with pytest.raises(ErpError, match=r"^Tripletex 400: <html>Bad</html>$"):
        await tripletex(recorder).get(session(), "/ledger/account")


async def test_conditional_gets_send_the_digest_back_and_a_304_means_unchanged() -> None:
    recorder = Recorder(
        ok({"values": [1], "versionDigest": "digest-1"}),
        httpx.Response(304),
        ok({"values": [1], "versionDigest": "digest-1"}),
    )
    client = tripletex(recorder)
    token = session()
    params = {"fields": "id", "count": 10000}

    first = await client.get(
        token, "/ledger/account", company_id=7, params=params, conditional=True
    )
    second = await client.get(
        token, "/ledger/account", company_id=7, params=params, conditional=True
    )
    client.forget_etags(7)
    third = await client.get(
        token, "/ledger/account", company_id=7, params=params, conditional=True
    )

    assert first == {"values": [1], "versionDigest": "digest-1"}
    assert second is None
    assert third == first
    tags = [r.headers.get("If-None-Match") for r in recorder.requests]
    assert tags == [None, "digest-1", None]


async def test_a_session_tripletex_refuses_is_made_anew_once() -> None:
    recorder = Recorder(
        ok({"value": {"token": "first"}}),
        httpx.Response(401, json={"message": "Expired"}),
        ok({"value": {"token": "second"}}),
        ok({"values": [], "fullResultSize": 0}),
    )
    connector = TripletexConnector(tripletex(recorder))
    company = CompanyRef.of(4711, KeyKind.ACCOUNTANT)

    accounts = await connector.fetch_accounts("employee-secret", company)

    assert accounts == []
    auth = [r.headers.get("Authorization") for r in recorder.requests]
    assert auth[1] == "Basic " + base64.b64encode(b"4711:first").decode()
    assert auth[3] == "Basic " + base64.b64encode(b"4711:second").decode()


async def test_the_session_url_is_logged_without_its_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_context()
    recorder = Recorder(ok({"value": {"token": "session-token"}}))

    with caplog.at_level(logging.DEBUG, logger="services.connectors.tripletex"):
        await tripletex(recorder).create_session("employee-secret")

    (line,) = [r.getMessage() for r in caplog.records if "/token/session/" in r.getMessage()]
    assert line.startswith("Tripletex: PUT https://tripletex.test/v2/token/session/:create?")
    assert "employeeToken=***" in line and "consumerToken=***" in line
    assert "employee-secret" not in caplog.text and "consumer-secret" not in caplog.text


async def test_the_layers_name_no_system() -> None:
    """Another system's pieces: Retry-After on a 429, RFC 7807 problem bodies, no budget."""
    calls: list[tuple[str, int | str, bool]] = []
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "0.01"}),
        httpx.Response(409, json={"title": "Conflict", "detail": "Already there"}),
    )
    api = ApiClient(
        recorder.transport,
        base_url="https://api.example.test/v1/",
        system="example",
        errors=ErrorMap("Example", request_id_header="x-request-id"),
        retry=RetryPolicy(max_retries=1, backoff=0.001, wait_header="Retry-After"),
        hooks=[lambda method, status, retry: calls.append((method, status, retry))],
        log=logging.getLogger("tests.example"),
    )

    with pytest.raises(ErpError) as raised:
        await api.request("POST", "/things", json={"a": 1}, auth=httpx.BasicAuth("u", "p"))

    assert str(raised.value) == "Example 409: Already there"
    assert raised.value.request_id is None
    assert calls == [("POST", 429, False), ("POST", 409, True)]
    assert [str(r.url) for r in recorder.requests] == ["https://api.example.test/v1/things"] * 2
    assert recorder.requests[1].headers["Authorization"].startswith("Basic ")


async def test_count_attempts_without_metrics_still_counts_the_sync_run() -> None:
    stats = RequestStats()
    reset = request_stats.set(stats)
    try:
        hook = count_attempts("example", None)
        hook("GET", 200, False)
        hook("GET", "error", True)
    finally:
        request_stats.reset(reset)

    assert (stats.requests, stats.retries) == (2, 1)


async def test_urls_are_built_from_the_parsed_base_as_httpx_would_parse_them() -> None:
    """ApiClient sets httpx.URL's parsed parts itself (a full parse per request costs a fifth
    of its CPU): what it builds must equal what httpx makes of the same string."""
    recorder = Recorder(ok({}), ok({}))
    api = ApiClient(
        recorder.transport,
        base_url="https://api.example.test:8443/v2/",
        system="example",
        errors=ErrorMap("Example"),
        retry=RetryPolicy(max_retries=0),
        log=logging.getLogger("tests.example"),
    )
    await api.request("GET", "/ledger/account", params={"fields": "id,name(*)", "from": 0})
    await api.request("GET", "/token/session/>whoAmI")

    expected = [
        "https://api.example.test:8443/v2/ledger/account?fields=id%2Cname%28%2A%29&from=0",
        "https://api.example.test:8443/v2/token/session/%3EwhoAmI",
    ]
    built = [r.url for r in recorder.requests]
    assert [str(url) for url in built] == [str(httpx.URL(e)) for e in expected]
    assert built == [httpx.URL(e) for e in expected]
    assert built[0].params["fields"] == "id,name(*)" and built[0].port == 8443
    assert built[1].path == "/v2/token/session/>whoAmI"
