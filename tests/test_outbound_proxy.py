"""Operators behind a proxy: HTTP(S)_PROXY and NO_PROXY decide how we reach Tripletex, and
notification deliveries through the proxy still go only to public addresses.

A real forward proxy on loopback (an aiohttp server answering absolute-URI requests) stands
in for the operator's; the Tripletex host does not exist, so only a proxied request can
succeed.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from services.connectors.base import ErpUnavailable
from services.connectors.tripletex import TripletexClient
from services.outbound import outbound
from services.outbound_guard import REFUSED, GuardedClient, OutboundError, OutboundPolicy
from tests import outbound_support
from tests.outbound_support import FakeDns, Listener, listening, read_request

pytestmark = [pytest.mark.anyio, pytest.mark.database_agnostic]

dns = outbound_support.dns

TRIPLETEX = "http://tripletex.invalid/v2"


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A forward proxy that answers every request itself, as Tripletex's session endpoint."""
    seen: list[web.Request] = []

    async def forward(request: web.Request) -> web.Response:
        seen.append(request)
        body = {"value": {"token": "session-token-from-proxy"}}
        return web.Response(text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def create_session() -> str:
    async with outbound(5) as out:
        client = TripletexClient(out.erp, base_url=TRIPLETEX, consumer_token="consumer")
        return (await client.create_session("employee-token")).token


async def test_tripletex_is_reached_through_the_configured_proxy(
    proxy: tuple[str, list[web.Request]], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", f"http://operator:hemmelig@{address}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)

    assert await create_session() == "session-token-from-proxy"

    (request,) = seen
    assert str(request.url).startswith(f"{TRIPLETEX}/token/session/:create?")
    expected = "Basic " + base64.b64encode(b"operator:hemmelig").decode()
    assert request.headers["Proxy-Authorization"] == expected


async def test_no_proxy_sends_tripletex_requests_straight(
    proxy: tuple[str, list[web.Request]], monkeypatch: pytest.MonkeyPatch
) -> None:
    address, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", f"http://{address}")
    monkeypatch.setenv("NO_PROXY", "tripletex.invalid")

    with pytest.raises(ErpUnavailable):  # straight to a host that does not exist
        await create_session()
    assert seen == []


def refuse_tunnel(conn: socket.socket, listener: Listener) -> None:
    """A forward proxy that notes what it was asked for and refuses it."""
    listener.first_lines.append(read_request(conn).split(b"\r\n")[0])
    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")


async def test_deliveries_through_a_proxy_check_the_target_before_sending(
    monkeypatch: pytest.MonkeyPatch, dns: FakeDns
) -> None:
    """The proxy resolves the target itself; what it resolves to for us is checked first."""
    dns.answers["intern.kontoret.example"] = ["10.0.0.5"]
    dns.answers["hooks.kontoret.example"] = ["93.184.215.14"]
    with listening(refuse_tunnel) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # Production's rules: the operator's proxy may sit on a private address all the same.
        async with GuardedClient(OutboundPolicy()) as http:
            with pytest.raises(OutboundError) as refused:
                await http.post(
                    "https://intern.kontoret.example/erp", body=b"{}", headers={}, deadline=5
                )
            assert refused.value.reason == REFUSED
            assert proxy.accepted == 0

            with pytest.raises(OutboundError):  # this proxy refuses every tunnel
                await http.post(
                    "https://hooks.kontoret.example/erp", body=b"{}", headers={}, deadline=5
                )
        assert proxy.first_lines == [b"CONNECT hooks.kontoret.example:443 HTTP/1.1"]
