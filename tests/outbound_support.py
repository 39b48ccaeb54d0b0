"""Real listeners on loopback for the outbound tests, a DNS that answers as a test says (DNS
lies outside the machine), and this process's resident memory read from /proc."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest


class Listener:
    """A TCP server on 127.0.0.1 in a thread: counts the connections it accepts and those
    still open, and hands each to `serve` (by default: close it at once)."""

    def __init__(self, serve: Callable[[socket.socket, Listener], None] | None = None) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self._server.getsockname()[1]
        self.accepted = 0
        self.in_flight = 0
        self.first_lines: list[bytes] = []
        self.stopping = threading.Event()
        self._serve = serve or (lambda conn, _listener: None)
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                self.in_flight += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            with conn:
                self._serve(conn, self)
        except OSError:
            pass  # the client went away: what the tests make it do
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.stopping.set()
        self._server.close()


@contextmanager
def listening(serve: Callable[[socket.socket, Listener], None] | None = None) -> Iterator[Listener]:
    listener = Listener(serve)
    try:
        yield listener
    finally:
        listener.close()


def read_request(conn: socket.socket) -> bytes:
    """The request's head and body (by Content-Length), as a receiver reads it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


@dataclass
class FakeDns:
    answers: dict[str, list[str]] = field(default_factory=dict)  # name → its addresses
    lookups: Counter[str] = field(default_factory=Counter)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    """Host names resolved to the addresses a test puts in `dns.answers`, each lookup counted.

    Only the system lookup is replaced (what the outbound guard's resolver calls); every
    other name resolves as usual."""
    fake = FakeDns()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        if name not in fake.answers:
            return real(host, port, family, type, proto, flags)
        fake.lookups[name] += 1
        return [
            info
            for address in fake.answers[name]
            for info in real(address, port, family, type, proto, socket.AI_NUMERICHOST)
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return fake


def rss_kib() -> int:
    """This process's resident set size now (VmRSS), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssPeak:
    """Samples VmRSS every few milliseconds in a thread: a transient peak counts too (memory
    freed before the test looks would otherwise hide it)."""

    def __init__(self) -> None:
        self.baseline = rss_kib()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib())
            time.sleep(0.002)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / 1024
