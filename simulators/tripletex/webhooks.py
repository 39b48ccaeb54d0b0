"""Webhook events, subscription checks, and asynchronous, signed, retried delivery.

State changes happen in whatever thread calls the state's methods (a test, a control API
handler); deliveries are HTTP calls that must run on an event loop. So `Webhooks.submit` is
thread-safe: it hands each delivery to the app's loop (recorded when the app serves a
request or starts up) with `call_soon_threadsafe`, or holds it until a loop is known.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from simulators.tripletex.errors import invalid
from simulators.tripletex.fields import FieldsError, FieldTree, apply_fields, parse_fields
from simulators.tripletex.model import Account, Company, Subscription, Voucher
from simulators.tripletex.render import Renderer

# The events the simulator fires (GET /v2/event). Tripletex sends voucher.update also when a
# voucher's postings change.
EVENTS: dict[str, str] = {
    "account.create": "Account created",
    "account.update": "Account updated",
    "account.delete": "Account deleted",
    "voucher.create": "Voucher created",
    "voucher.update": "Voucher updated",
    "voucher.delete": "Voucher deleted",
}
ACTIVE = "ACTIVE"
STATUSES = ("ACTIVE", "DISABLED", "DISABLED_TOO_MANY_ERRORS", "DISABLED_RATE_LIMIT_EXCEEDED")
STATUSES += ("DISABLED_MISUSE",)
# Real Tripletex demands HTTPS; plain HTTP to this machine is allowed for tests and the demo.
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


def render_value(
    render: Renderer, company: Company, obj: Account | Voucher, tree: FieldTree
) -> dict[str, Any]:
    """The object as GET would show it with that fields tree (postings expanded on request)."""
    if isinstance(obj, Account):
        used = any(p.account_id == obj.id for p in company.postings())
        return apply_fields(render.account(obj, used), tree, "Account")
    accounts = {a.id: a for a in company.accounts} if tree.get("postings") else None
    return apply_fields(render.voucher(obj, accounts), tree, "Voucher")


def check_subscription(sub: Subscription, company: Company, allow_http: bool) -> None:
    """Tripletex's validation of a (new or changed) subscription: 422 on the first problem."""
    if sub.event not in EVENTS:
        raise invalid("event", f"Ukjent hendelse '{sub.event}'. Se GET /event.")
    url = urlsplit(sub.target_url or "")
    loopback = url.scheme == "http" and url.hostname in LOOPBACK_HOSTS
    if not url.netloc or not (url.scheme == "https" or loopback or allow_http):
        raise invalid("targetUrl", "Må være en absolutt URL som bruker HTTPS.")
    if bool(sub.auth_header_name) != bool(sub.auth_header_value):
        raise invalid("authHeaderValue", "authHeaderName og authHeaderValue må settes sammen.")
    if sub.status not in STATUSES:
        raise invalid("status", f"Ugyldig status '{sub.status}'.")
    if sub.fields and not sub.event.endswith(".delete"):
        # Check the pattern against a real object of the event's model, as GET would.
        samples = company.accounts if sub.event.startswith("account.") else company.vouchers
        try:
            tree = parse_fields(sub.fields)
            if samples:
                render_value(Renderer(sub.api_base), company, samples[0], tree)
        except FieldsError as exc:
            raise invalid("fields", str(exc)) from None


def signature(secret: str, idempotency_key: str, body: bytes) -> str:
    """The spec's x-request-signature: base64(HmacSHA512(idempotency-key + '&' + body))."""
    message = idempotency_key.encode() + b"&" + body
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha512).digest()).decode()


@dataclass
class Delivery:
    """One callback (with its retries), as recorded in `SimulatorState.deliveries`."""

    subscription: Subscription = field(repr=False)
    event: str
    object_id: int
    target: str
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    status: str = "pending"  # pending → delivered | failed | cancelled
    attempts: int = 0
    response_status: int | None = None  # of the last attempt
    error: str = ""

    @property
    def subscription_id(self) -> int:
        return self.subscription.id

    @property
    def idempotency_key(self) -> str:
        return self.headers["idempotency-key"]


def build_delivery(sub: Subscription, payload: Mapping[str, Any], body: bytes) -> Delivery:
    key = str(uuid.uuid4())  # one per delivery: retries repeat it, so receivers can dedupe
    headers = {"content-type": "application/json; charset=utf-8", "idempotency-key": key}
    if sub.auth_header_name and sub.auth_header_value:
        headers[sub.auth_header_name] = sub.auth_header_value
    if sub.hmac_shared_secret:
        headers["x-request-signature"] = signature(sub.hmac_shared_secret, key, body)
    return Delivery(sub, str(payload["event"]), int(payload["id"]), sub.target_url, body, headers)


@dataclass
class Webhooks:
    """Delivery settings and the machinery; one per SimulatorState."""

    max_attempts: int = 3
    retry_backoff_seconds: float = 0.5  # doubles after each failed attempt
    disable_after_failures: int = 10  # consecutive failed deliveries → DISABLED_TOO_MANY_ERRORS
    timeout_seconds: float = 10.0
    # Tests may inject e.g. httpx.MockTransport; by default deliveries use real HTTP.
    transport: httpx.AsyncBaseTransport | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _held: list[Delivery] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _client: httpx.AsyncClient | None = field(default=None, repr=False)
    _client_loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on this loop from now on, unless a live loop is already delivering."""
        if loop is self._loop:
            return
        with self._lock:
            current = self._loop
            if current is not None and not current.is_closed() and current.is_running():
                return
            self._loop, held, self._held = loop, self._held, []
        for delivery in held:
            loop.call_soon_threadsafe(self._start, delivery)

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery; safe from any thread, inside or outside the delivering loop."""
        self.deliveries.append(delivery)
        with self._lock:
            loop = self._loop
            if loop is None or loop.is_closed() or not loop.is_running():
                try:  # called from a coroutine: that loop will do
                    loop = self._loop = asyncio.get_running_loop()
                except RuntimeError:
                    self._held.append(delivery)
                    return
        loop.call_soon_threadsafe(self._start, delivery)

    def pending(self) -> int:
        return sum(1 for d in self.deliveries if d.status == "pending")

    async def wait_idle(self, seconds: float = 5.0) -> None:
        """Until every delivery has finished (from any loop: it only polls the records)."""
        for _ in range(int(seconds / 0.01) + 1):
            if not self.pending():
                return
            await asyncio.sleep(0.01)
        raise TimeoutError(f"{self.pending()} webhook deliveries still pending")

    async def aclose(self) -> None:
        """Stop deliveries and close the shared client, on the loop it belongs to."""
        loop = self._client_loop
        if loop is not None and loop is not asyncio.get_running_loop():
            if loop.is_running():  # close it there: a client's sockets belong to its loop
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.aclose(), loop))
            else:  # its loop is gone, and the sockets with it
                self._client = self._client_loop = None
            return
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
        self._client = self._client_loop = None

    def _start(self, delivery: Delivery) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(delivery))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)

    def _http(self) -> httpx.AsyncClient:
        # One shared client (connection pool) per loop: a client cannot move between loops.
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout_seconds, transport=self.transport)
            self._client_loop = loop
        return self._client

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            await self._attempts(delivery)
        except asyncio.CancelledError:  # the app shuts down
            delivery.status = "cancelled"
            raise

    async def _attempts(self, delivery: Delivery) -> None:
        sub = delivery.subscription
        for attempt in range(1, self.max_attempts + 1):
            if sub.status != ACTIVE:  # disabled or deleted meanwhile: Tripletex stops too
                delivery.status = "cancelled"
                return
            delivery.attempts = attempt
            try:
                response = await self._http().post(
                    delivery.target, content=delivery.body, headers=delivery.headers
                )
                delivery.response_status = response.status_code
                if response.is_success:
                    delivery.status = "delivered"
                    sub.consecutive_failures = 0
                    return
            except Exception as exc:  # any failure to deliver (timeout, refused, bad URL) counts
                delivery.error = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_attempts:
                await asyncio.sleep(self.retry_backoff_seconds * 2 ** (attempt - 1))
        delivery.status = "failed"
        sub.consecutive_failures += 1
        if sub.consecutive_failures >= self.disable_after_failures and sub.status == ACTIVE:
            sub.status = "DISABLED_TOO_MANY_ERRORS"
