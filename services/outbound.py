"""Outbound HTTP: one aiohttp connection pool for calls to Tripletex and notification
deliveries.

The Tripletex client speaks aiohttp directly (the sync's hot path); notification delivery
uses httpx's API over the same pool (httpx-aiohttp). httpx's own pool spends milliseconds
of CPU per request once tens of requests are in flight (encode/httpx#3215).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


@dataclass(frozen=True)
class Outbound:
    session: aiohttp.ClientSession  # for the Tripletex client
    http: httpx.AsyncClient  # the same pool through httpx's API


@asynccontextmanager
async def outbound(
    seconds: float = 15.0,
    *,
    connect: float = 5.0,
    max_connections: int = 100,
    trace_configs: Sequence[aiohttp.TraceConfig] = (),
) -> AsyncIterator[Outbound]:
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=seconds, connect=connect),
        connector=aiohttp.TCPConnector(limit=max_connections),
        trace_configs=list(trace_configs) or None,
        trust_env=True,  # HTTP(S)_PROXY and NO_PROXY, as httpx honoured them
    )
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(seconds, connect=connect),
        transport=AiohttpTransport(client=session),
    )
    try:
        yield Outbound(session, http)
    finally:
        await http.aclose()  # its transport closes the session
