"""Prometheus counters, one registry per app (web/middleware.py counts our HTTP requests).

A registry per app rather than prometheus_client's global one: tests build many apps in one
process, and the global registry refuses a second counter of the same name.
Nothing here may carry a secret or a customer's data: /metrics is unauthenticated.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder

UNMATCHED_ROUTE = "unmatched"  # no route matched (404, 405): one label value, not the raw path
# Clients may send any method name; counting each would let anyone add time series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.system_requests = Counter(
            "erp_system_requests",
            "HTTP requests to the accounting systems, retries included; status 'error' for "
            "transport failures",
            ["system", "method", "status"],
            registry=self.registry,
        )
        self.http_requests = Counter(
            "erp_http_requests",
            "HTTP requests to this app, by route template",
            ["method", "route", "status"],
            registry=self.registry,
        )
        # Filled by the sync engine, and webhook events by their receiver.
        self.syncs = Counter(
            "erp_syncs",
            "Sync runs by system and result",
            ["system", "result"],
            registry=self.registry,
        )
        self.sync_failures = Counter(
            "erp_sync_failures", "Sync runs that failed", registry=self.registry
        )
        self.webhook_events = Counter(
            "erp_webhook_events",
            "Change callbacks from the accounting systems by system, event and outcome "
            "(accepted, duplicate, unknown, rejected)",
            ["system", "event", "outcome"],
            registry=self.registry,
        )

    def count_system_request(self, system: str, method: str, status: int | str) -> None:
        self.system_requests.labels(system=system, method=method, status=str(status)).inc()

    def count_http_request(self, method: str, route: str, status: int) -> None:
        self.http_requests.labels(method=method, route=route, status=str(status)).inc()

    def render(self, accept: str) -> tuple[bytes, str]:
        """The exposition body and its content type, in the format the scraper asks for."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
