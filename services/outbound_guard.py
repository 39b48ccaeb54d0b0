"""The one gate for requests to addresses a user gave us: an office's notification URL today,
a connector's OAuth or callback URL later. Nothing user-influenced is sent any other way.

Two checks, both here:

- `check_url`, when a URL is saved (and again before every send, since the rules may have
  tightened since): https only, a port from the allow-list, no user or password, no control
  characters or whitespace anywhere, and no literal address or host name that is obviously
  not on the public internet. The host is judged as it will be sent: IDNA-encoded and
  lowercased, as yarl hands it to aiohttp (`metadata.google.ⓘnternal` is
  metadata.google.internal).
- `GuardedConnector`, when connecting: every address the host resolves to must be globally
  routable, or the request is refused before any connection is made; the connection then goes
  to exactly the addresses checked, so a DNS answer that changes between check and connect
  (rebinding) cannot slip through. Literal IPs pass through the same hook. Behind an outbound
  proxy (HTTPS_PROXY) the proxy resolves the target itself: we check what the target
  resolves to for us before sending, and cannot see what the proxy connects to.

`OutboundPolicy.allow_private` (OUTBOUND_ALLOW_PRIVATE: development, tests, the demo) widens
only what non-public addresses may do: they are let through, on any port and over plain http.
Public addresses, and host names that do not look internal (where they point is known only
when connecting), keep https and the port allow-list. Never this app's own port on a
non-public address: in the demo that is the Tripletex simulator's control API.

`GuardedClient.post` is the send: a hard deadline over connect, request and answer, at most
`MAX_ANSWER` bytes of the answer read. Every failure is an `OutboundError` whose `reason` is
generic and safe to show an office (never the socket's error text, which tells open ports from
closed ones); its own text is the detail, for the server log (no URL: a query may hold a token).
"""

from __future__ import annotations

import asyncio
import ipaddress
import unicodedata
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.client_reqrep import ClientRequest
from aiohttp.helpers import get_env_proxy_for_url
from aiohttp.resolver import ThreadedResolver
from yarl import URL

if TYPE_CHECKING:
    from aiohttp.tracing import Trace

    from services.settings import Settings

MAX_ANSWER = 64 * 1024  # an answer's bytes we read; a webhook receiver's status is what counts

# Why a send failed, in the leveranselogg.
REFUSED = "Adressen er ikke tillatt (ikke en offentlig adresse)"
UNREACHABLE = "Kunne ikke koble til mottakeren"
TIMED_OUT = "Tidsavbrudd"
FAILED = "Varselet kunne ikke sendes"
# Why a URL is refused, in the settings form (and in the log, should it be sent anyway).
NOT_PUBLIC = REFUSED
PLAIN_HTTP = "Bruk https://. Ukryptert http:// er bare tillatt til interne adresser."

# Names that never resolve to a public address: single labels are refused beside these.
INTERNAL_SUFFIXES = (
    "localhost",
    "local",
    "internal",  # metadata.google.internal, *.ec2.internal
    "localdomain",
    "lan",
    "home",
    "corp",
    "intranet",
    "private",
    "arpa",  # home.arpa, reverse zones
    "test",
    "invalid",
)


@dataclass(frozen=True)
class OutboundPolicy:
    allowed_ports: frozenset[int] = frozenset({443, 8443})
    allow_private: bool = False
    # This app's listening address: never a target, whatever `allow_private` says.
    own_host: str = "127.0.0.1"
    own_port: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(
            allowed_ports=frozenset(settings.outbound_allowed_ports),
            allow_private=settings.outbound_allow_private,
            own_host=settings.host,
            own_port=settings.port,
        )

    def allows_address(
        self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, *, https: bool
    ) -> bool:
        return self.refusal(ip, port, https=https) is None

    def refusal(
        self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, *, https: bool
    ) -> str | None:
        """Why connecting to `ip`:`port` is refused (Norwegian, for the form), or None."""
        public = is_public(ip)
        if not public and not self.allow_private:
            return NOT_PUBLIC
        if port == self.own_port and (not public or ip == _ip(self.own_host)):
            # Listening on 0.0.0.0 or :: answers on every local address, so any non-public
            # one (loopback, the LAN address) with our port may be us.
            return "Adressen peker til denne tjenesten selv; bruk mottakerens adresse."
        return self.public_refusal(port, https=https) if public else None

    def public_refusal(self, port: int, *, https: bool) -> str | None:
        """Why a public host at `port` is refused, or None: `allow_private` changes nothing."""
        if not https:
            return PLAIN_HTTP  # never in clear text across the internet
        if port not in self.allowed_ports:
            allowed = " eller ".join(str(p) for p in sorted(self.allowed_ports))
            return f"Porten må være {allowed}."
        return None


class UrlRefused(ValueError):
    """A URL the policy refuses; `message` is Norwegian, for the settings form."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AddressRefused(Exception):
    """A request the policy refuses, found when connecting and raised before any connection.

    Not an OSError, so aiohttp passes it through rather than wrapping it as a DNS failure."""


class OutboundError(Exception):
    """A send that did not get an answer; `reason` is generic and safe to show."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most MAX_ANSWER bytes
    complete: bool  # False: the answer was longer and the rest was not read


# -- when a URL is saved ---------------------------------------------------------------------


def check_url(raw: str, policy: OutboundPolicy) -> str:
    """The URL as it will be stored and sent, or UrlRefused saying what is wrong."""
    url = raw.strip(" ")
    if any(_is_forbidden_char(ch) for ch in url):
        raise UrlRefused(
            "Adressen kan ikke inneholde mellomrom, linjeskift, tabulator eller andre kontrolltegn."
        )
    if len(url) > 2000:
        raise UrlRefused("Adressen er for lang (høyst 2000 tegn).")
    if "\\" in url:  # browsers read it as "/", Python's parser does not: no second opinions
        raise UrlRefused("Adressen kan ikke inneholde omvendt skråstrek (\\).")
    try:
        parts = urlsplit(url)
        sent = URL(url)  # as aiohttp will read it: both parsers must accept it
        # The host as it is sent: IDNA-encoded (NFKC-mapped: ⓛocal is local) and lowercased.
        hostname = sent.raw_host
        if hostname:
            _ = sent.host  # decoding it back fails where IDNA rejects a label (xn--zz)
    except ValueError:  # e.g. an unclosed [ around an IPv6 address; UnicodeError from IDNA
        raise UrlRefused("Adressen er ikke en gyldig URL.") from None
    scheme = parts.scheme.lower()
    if not (scheme == "https" or (scheme == "http" and policy.allow_private)):
        raise UrlRefused("Adressen må begynne med https://")
    if not hostname:
        raise UrlRefused("Adressen mangler et vertsnavn, som i https://mottaker.no/varsler")
    if "@" in parts.netloc:
        raise UrlRefused("Adressen kan ikke inneholde brukernavn eller passord.")
    if "%" in parts.netloc:  # escapes in a host name mean something else to each parser
        raise UrlRefused("Adressen har et ugyldig vertsnavn.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        port = None
    if port is None or port != sent.port:
        raise UrlRefused("Adressen har et ugyldig portnummer.")
    host = hostname.rstrip(".")
    if "" in host.split("."):  # ⒈.no maps to 1..no: IDNA refuses it, yarl's fallback not
        raise UrlRefused("Adressen har et ugyldig vertsnavn.")
    https = scheme == "https"
    address = _ip(host)
    if address is not None:
        refusal = policy.refusal(address, port, https=https)
    elif _looks_internal(host):
        # Where a name points is judged when connecting; what is plainly internal goes now.
        if not policy.allow_private:
            refusal = NOT_PUBLIC
        elif host == "localhost" or host.endswith(".localhost"):
            refusal = policy.refusal(ipaddress.IPv4Address("127.0.0.1"), port, https=https)
        else:
            refusal = None
    else:
        # Any other name is held to the public rules, allowed private addresses or not: it
        # may well point to the internet (and is checked again when connecting).
        refusal = policy.public_refusal(port, https=https)
    if refusal is not None:
        raise UrlRefused(refusal)
    return url


def _is_forbidden_char(ch: str) -> bool:
    # Cc: \x00-\x1f, \x7f-\x9f; Cf: invisible format characters; Z*: every kind of space.
    return unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def _looks_internal(host: str) -> bool:
    labels = host.lower().split(".")
    if len(labels) < 2 or labels[-1] in INTERNAL_SUFFIXES:
        return True
    # A numeric last label is no DNS name but a legacy IPv4 form (127.1, 2130706433, 0x7f.1)
    # that a resolver may turn into any address.
    last = labels[-1]
    return last.isdigit() or last.startswith("0x")


# -- which addresses are public -------------------------------------------------------------

_V4_NOT_PUBLIC = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # this network, unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.31.196.0/24",
        "192.52.193.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "192.175.48.0/24",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_NOT_PUBLIC = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable unicast; IPv6 forms that carry an IPv4 address are judged by it.

    An explicit table rather than `is_global`: Python 3.11's misses IPv4-mapped addresses,
    multicast and the NAT64 prefix."""
    if isinstance(ip, ipaddress.IPv4Address):
        return not any(ip in net for net in _V4_NOT_PUBLIC)
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        return is_public(ip.ipv4_mapped)
    if ip in _NAT64:  # 64:ff9b::a.b.c.d, translated to a.b.c.d by the network
        return is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:  # 2002:AABB:CCDD::/48 routes to a.b.c.d
        return is_public(ip.sixtofour)
    if ip in _IPV4_COMPATIBLE:  # ::a.b.c.d (deprecated), ::1 and :: among them
        return False
    # Only 2000::/3 is allocated for global unicast: ULA fc00::/7, link-local fe80::/10,
    # multicast ff00::/8, site-local fec0::/10 and local NAT64 64:ff9b:1::/48 are outside.
    return ip in _V6_GLOBAL_UNICAST and not any(ip in net for net in _V6_NOT_PUBLIC)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: the zone is no part
    except ValueError:
        return None


# -- when connecting -------------------------------------------------------------------------

# The scheme of the request being connected, for `_resolve_host`; PROXY while connecting to
# the operator's proxy. A lookup from anywhere else is judged as plain http: the strictest.
_CONNECTING: ContextVar[str] = ContextVar("connecting", default="http")
_PROXY = "proxy"


class GuardedConnector(aiohttp.TCPConnector):
    """Resolves, checks every address, and connects only to those.

    `_resolve_host` is where aiohttp turns a request's host, name or literal IP, into the
    addresses it then connects to (it skips the resolver for literal IPs, not this method),
    so a check here sees exactly what is connected to. It is private API: the connector tests
    in tests/test_outbound_guard.py pin its behaviour on the aiohttp we ship."""

    def __init__(self, policy: OutboundPolicy, **kwargs: Any) -> None:
        # The threaded resolver (the system's getaddrinfo) whether or not aiodns is installed.
        super().__init__(resolver=ThreadedResolver(), **kwargs)
        self._policy = policy

    async def _create_connection(  # aiohttp's signature, `timeout` included
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
    ) -> Any:
        self._check_request(req)
        token = _CONNECTING.set(req.url.scheme)
        try:
            if req.proxy is not None:
                # The proxy resolves the target again, perhaps differently: we check ours.
                assert req.url.raw_host is not None and req.port is not None
                await self._resolve_host(req.url.raw_host, req.port, traces=traces)
                # The connection itself goes to the operator's proxy, which may be private.
                _CONNECTING.set(_PROXY)
            return await super()._create_connection(req, traces, timeout)
        finally:
            _CONNECTING.reset(token)

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Trace] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        scheme = _CONNECTING.get()
        if scheme == _PROXY:
            return results
        for result in results:
            address = _ip(result["host"])
            if address is None or not self._policy.allows_address(
                address, port, https=scheme == "https"
            ):
                raise AddressRefused(f"{host} resolves to {result['host']}, port {port}")
        return results

    def _check_request(self, req: ClientRequest) -> None:
        """The scheme and port as aiohttp parsed them, in case they differ from `check_url`'s.

        With `allow_private` this waits for the addresses: `_resolve_host` holds the public
        ones among them to https and the allowed ports."""
        if self._policy.allow_private:
            return
        if req.url.scheme != "https" or req.port not in self._policy.allowed_ports:
            raise AddressRefused(f"{req.url.scheme} to port {req.port} is not allowed")


# -- sending ---------------------------------------------------------------------------------


class GuardedClient:
    """A connection pool whose every request passes both checks; close it when done."""

    def __init__(self, policy: OutboundPolicy, *, max_connections: int = 100) -> None:
        self.policy = policy
        self._session = aiohttp.ClientSession(
            connector=GuardedConnector(policy, limit=max_connections),
            # Our deadline (asyncio.timeout in `post`) bounds everything; aiohttp's own
            # timeouts are per phase and a receiver dripping bytes outlives them all.
            timeout=aiohttp.ClientTimeout(total=None),
            # Not `trust_env`: it would also send ~/.netrc's (or $NETRC's) credentials, a
            # `default` entry to every host, to whatever URL an office saved. The proxy is
            # passed per request instead (`env_proxy`).
            trust_env=False,
            auto_decompress=False,  # 64 KB of gzip may unpack to gigabytes
        )

    async def __aenter__(self) -> GuardedClient:
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    async def post(
        self, url: str, *, body: bytes, headers: Mapping[str, str], deadline: float
    ) -> Answer:
        """POST and read at most MAX_ANSWER bytes of the answer, all within `deadline` seconds."""
        return await self.send("POST", url, body=body, headers=headers, deadline=deadline)

    async def get(self, url: str, *, headers: Mapping[str, str], deadline: float) -> Answer:
        """GET, as `post` (an identity provider's discovery document and keys)."""
        return await self.send("GET", url, body=None, headers=headers, deadline=deadline)

    async def send(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None,
        headers: Mapping[str, str],
        deadline: float,
    ) -> Answer:
        try:
            url = check_url(url, self.policy)
        except UrlRefused as exc:
            raise OutboundError(exc.message, f"url refused: {exc.message}") from exc
        host = urlsplit(url).hostname or "?"
        try:
            async with asyncio.timeout(deadline):
                # In a thread, as aiohttp's trust_env did: a proxy's netrc entry is a file read.
                proxy = await asyncio.to_thread(env_proxy, url)
                return await self._send(method, url, body, headers, proxy)
        except AddressRefused as exc:
            raise OutboundError(REFUSED, str(exc)) from exc
        except TimeoutError as exc:
            raise OutboundError(TIMED_OUT, f"{host}: no full answer within {deadline} s") from exc
        except aiohttp.ClientError as exc:
            # Refused, reset, disconnected, DNS, TLS: one reason, or the leveranselogg would
            # tell open ports from closed ones.
            raise OutboundError(UNREACHABLE, f"{host}: {_describe(exc)}") from exc
        except Exception as exc:  # e.g. a URL yarl parses differently: this send fails, no more
            raise OutboundError(FAILED, f"{host}: {type(exc).__name__}") from exc

    async def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
        proxy: str | None,
    ) -> Answer:
        async with self._session.request(
            method, url, data=body, headers=dict(headers), proxy=proxy, allow_redirects=False
        ) as response:
            chunks: list[bytes] = []
            size = 0
            while size < MAX_ANSWER:
                chunk = await response.content.read(MAX_ANSWER - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            complete = response.content.at_eof()
            if not complete:
                response.close()  # drop the connection rather than drain the rest
            return Answer(response.status, b"".join(chunks), complete)


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


def _describe(exc: BaseException) -> str:
    """For the server log: the exception's kind and the OS error behind it, never a URL
    (its query may carry a token)."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError):
        return f"{type(exc).__name__} ({os_error.strerror or type(os_error).__name__})"
    return type(exc).__name__
