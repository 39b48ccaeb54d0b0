"""Outbound HTTP: a pool for the ERPs' APIs, the guarded pool for addresses users give us
(notification deliveries), and an httpx client for the demo's calls to its simulator.

The ERP connectors speak httpx's API (`services.connectors.http`) to an aiohttp pool under
it (`AiohttpPool`, an httpx transport, below): a full sync keeps tens of requests in
flight, and httpx's own pool spends milliseconds of CPU per request there
(encode/httpx#3215). Requests to a URL a user saved go through
`services/outbound_guard.GuardedClient` and nothing else: it checks the URL and every
address it connects to. The httpx client (over its own aiohttp pool, httpx-aiohttp) is for
URLs the operator configured, such as the demo's simulator on this app's own port, which
the guard refuses by design.

All honour HTTP(S)_PROXY and NO_PROXY. The ERP pool looks them up once per host
(`env_proxy`): aiohttp's `trust_env` reads the environment and ~/.netrc again for every
request, in a worker thread: half the CPU a Tripletex request cost us. Deliveries are few
and go anywhere: their pool looks the proxy up per request with `env_proxy`, and never has
`trust_env`, which would also send ~/.netrc's credentials to whatever URL an office saved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from yarl import URL

# env_proxy is defined beside the guarded client, which needs it; AiohttpPool uses it too.
from services.outbound_guard import GuardedClient, OutboundPolicy, env_proxy

__all__ = ["AiohttpPool", "Outbound", "env_proxy", "outbound"]


class AiohttpPool(httpx.AsyncBaseTransport):
    """An httpx transport on an aiohttp session, as thin as it goes: the body is read whole,
    the session's own timeouts apply (total and connect; httpx's per-request ones are not
    used), and the proxy is looked up once per host. aiohttp's errors arrive as httpx's,
    the original as the cause. Closing it closes the session."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session
        self._proxies: dict[tuple[str, str, int | None], str | None] = {}

    async def aclose(self) -> None:
        await self._session.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.scheme, url.host, url.port)
        if origin in self._proxies:
            proxy = self._proxies[origin]
        else:
            proxy = self._proxies[origin] = env_proxy(str(url))
        try:
            async with self._session.request(
                request.method,
                URL(str(url), encoded=True),  # httpx encoded it already
                headers=request.headers.multi_items(),
                data=await request.aread() or None,
                allow_redirects=False,
                auto_decompress=False,  # httpx decodes, by the Content-Encoding it keeps
                proxy=proxy,
            ) as response:
                content = await response.read()
        except TimeoutError as exc:
            raise httpx.TimeoutException(type(exc).__name__, request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(type(exc).__name__, request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(type(exc).__name__, request=request) from exc
        return httpx.Response(
            response.status, headers=response.raw_headers, content=content, request=request
        )


@dataclass(frozen=True)
class Outbound:
    erp: AiohttpPool  # the ERPs' APIs: every connector's client sends through it
    guarded: GuardedClient  # every URL a user gave us: notification deliveries
    http: httpx.AsyncClient  # URLs the operator configured: the demo's calls to the simulator


@asynccontextmanager
async def outbound(
    seconds: float = 15.0,
    *,
    connect: float = 5.0,
    max_connections: int = 100,
    trace_configs: Sequence[aiohttp.TraceConfig] = (),
    policy: OutboundPolicy | None = None,
) -> AsyncIterator[Outbound]:
    timeout = aiohttp.ClientTimeout(total=seconds, connect=connect)
    erp = AiohttpPool(
        aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=max_connections),
            trace_configs=list(trace_configs) or None,
        )
    )
    configured = aiohttp.ClientSession(timeout=timeout, trust_env=True)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(seconds, connect=connect),
        transport=AiohttpTransport(client=configured),
    )
    guarded = GuardedClient(policy or OutboundPolicy())
    try:
        yield Outbound(erp, guarded, http)
    finally:
        await guarded.close()
        await http.aclose()  # its transport closes its aiohttp session
        await erp.aclose()
