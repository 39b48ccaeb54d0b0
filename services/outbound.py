"""Outbound HTTP: an aiohttp pool for calls to Tripletex, the guarded pool for addresses
users give us (notification deliveries), and an httpx client for the demo's calls to its
simulator.

The Tripletex client speaks aiohttp directly (the sync's hot path). Requests to a URL a user
saved go through `services/outbound_guard.GuardedClient` and nothing else: it checks the URL
and every address it connects to. The httpx client (over its own aiohttp pool, httpx-aiohttp:
httpx's own pool spends milliseconds of CPU per request once tens are in flight,
encode/httpx#3215) is for URLs the operator configured, such as the demo's simulator on this
app's own port, which the guard refuses by design.

All honour HTTP(S)_PROXY and NO_PROXY. The Tripletex pool reads them once per base URL
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

# env_proxy is defined beside the guarded client, which needs it; the Tripletex client takes
# it from here.
from services.outbound_guard import GuardedClient, OutboundPolicy, env_proxy

__all__ = ["Outbound", "env_proxy", "outbound"]


@dataclass(frozen=True)
class Outbound:
    session: aiohttp.ClientSession  # for the Tripletex client
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
    tripletex = aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=max_connections),
        trace_configs=list(trace_configs) or None,
    )
    configured = aiohttp.ClientSession(timeout=timeout, trust_env=True)
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(seconds, connect=connect),
        transport=AiohttpTransport(client=configured),
    )
    guarded = GuardedClient(policy or OutboundPolicy())
    try:
        yield Outbound(tripletex, guarded, http)
    finally:
        await guarded.close()
        await http.aclose()  # its transport closes its aiohttp session
        await tripletex.close()
