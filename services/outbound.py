"""Outbound HTTP: an aiohttp pool for calls to Tripletex and one for notification
deliveries.

The Tripletex client speaks aiohttp directly (the sync's hot path); notification delivery
uses httpx's API over its own aiohttp pool (httpx-aiohttp). httpx's own pool spends
milliseconds of CPU per request once tens of requests are in flight (encode/httpx#3215).

Both honour HTTP(S)_PROXY and NO_PROXY. The Tripletex pool reads them once per base URL
(`env_proxy`): aiohttp's `trust_env` reads the environment and ~/.netrc again for every
request, in a worker thread: half the CPU a Tripletex request cost us. Deliveries are few
and go anywhere, so their pool keeps `trust_env`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from httpx_aiohttp import AiohttpTransport
from yarl import URL


@dataclass(frozen=True)
class Outbound:
    session: aiohttp.ClientSession  # for the Tripletex client
    http: httpx.AsyncClient  # notification deliveries (and the demo's calls to the simulator)


def env_proxy(url: str) -> str | None:
    """The proxy HTTP(S)_PROXY and NO_PROXY name for `url` (the rules aiohttp's trust_env
    applies), credentials included; None to go straight."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:  # none configured for this scheme, or NO_PROXY covers the host
        return None
    if auth is not None:  # aiohttp sends a proxy URL's user as Proxy-Authorization
        proxy = proxy.with_user(auth.login).with_password(auth.password)
    return str(proxy)


@asynccontextmanager
async def outbound(
    seconds: float = 15.0,
    *,
    connect: float = 5.0,
    max_connections: int = 100,
    trace_configs: Sequence[aiohttp.TraceConfig] = (),
) -> AsyncIterator[Outbound]:
    timeout = aiohttp.ClientTimeout(total=seconds, connect=connect)
    tripletex = aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=max_connections),
        trace_configs=list(trace_configs) or None,
    )
    deliveries = aiohttp.ClientSession(timeout=timeout, trust_env=True)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(seconds, connect=connect),
        transport=AiohttpTransport(client=deliveries),
    )
    try:
        yield Outbound(tripletex, http)
    finally:
        await http.aclose()  # its transport closes the deliveries' session
        await tripletex.close()
