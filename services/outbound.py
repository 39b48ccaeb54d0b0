"""The one outbound HTTP client: calls to Tripletex and notification deliveries.

httpx's API with aiohttp's connection pool underneath: httpx's own pool spends milliseconds
of CPU per request once tens of requests are in flight (encode/httpx#3215), which on two
cores made a full sync CPU-bound; aiohttp's costs a fraction (bench/README.md).
"""

from __future__ import annotations

import httpx
from httpx_aiohttp import AiohttpTransport

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def outbound_http(
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, *, max_connections: int = 100
) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=max_connections)
    return httpx.AsyncClient(timeout=timeout, transport=AiohttpTransport(limits=limits))
