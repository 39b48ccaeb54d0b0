"""Load generator for benchmark 4: Tripletex change callbacks, signed, as fast as they are
answered. A process of its own, sending only to loopback, bounded in count and in time.

    python -m bench.webhook_load --url http://127.0.0.1:PORT --subscriptions subs.json \
        --events 10000 --concurrency 16 --seconds 60 --out result.json

subs.json lists {hook_id, secret, subscription_id, event, client_id}. Every callback is
`{subscriptionId, event, id, value}` with headers `idempotency-key` and `x-request-signature`
= base64(HMAC-SHA512(secret, idempotency_key + "&" + body)), as Tripletex sends them. Each
client gets its share of events spread over three months; every 50th event is a replay of
an earlier one (same key, same body), which must be taken as a duplicate. Requests are built
before the clock starts and sent over plain keep-alive HTTP/1.1 (asyncio streams: a load
generator that costs little CPU leaves the cores to the app).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit


def months_back(today: date, count: int) -> list[date]:
    days, year, month = [], today.year, today.month
    for _ in range(count):
        days.append(date(year, month, min(today.day, 28)))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return days


def build(subscriptions: list[dict], events: int, host: str) -> list[dict]:
    days = months_back(date.today(), 3)
    built: list[dict] = []
    for i in range(events):
        if i % 50 == 49 and built:
            replay = built[(i * 7919) % len(built)]
            built.append({**replay, "replay": True})
            continue
        sub = subscriptions[i % len(subscriptions)]
        voucher_id = 1_000_000 + i
        day = days[(i // len(subscriptions)) % len(days)]
        body = json.dumps(
            {
                "subscriptionId": sub["subscription_id"],
                "event": sub["event"],
                "id": voucher_id,
                "value": {"id": voucher_id, "date": day.isoformat(), "description": "Bilag"},
            },
            separators=(",", ":"),
        ).encode()
        key = str(uuid.uuid4())
        signature = base64.b64encode(
            hmac.new(sub["secret"].encode(), key.encode() + b"&" + body, hashlib.sha512).digest()
        ).decode()
        head = (
            f"POST /webhooks/tripletex/{sub['hook_id']} HTTP/1.1\r\n"
            f"host: {host}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nidempotency-key: {key}\r\n"
            f"x-request-signature: {signature}\r\n\r\n"
        )
        built.append(
            {
                "raw": head.encode() + body,
                "key": key,
                "client_id": sub["client_id"],
                "month": day.isoformat()[:7],
                "replay": False,
            }
        )
    return built


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def run(url: str, requests: list[dict], concurrency: int, seconds: float) -> dict:
    parts = urlsplit(url)
    queue = iter(range(len(requests)))
    results: list[tuple[int, int, float, float]] = []  # index, status, sent at, latency
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            for index in queue:
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                writer.write(requests[index]["raw"])
                status = await read_response(reader)
                results.append((index, status, time.time(), time.perf_counter() - started))
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.monotonic() - started
    return {"wall_s": wall, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--subscriptions", required=True)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    parts = urlsplit(args.url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the load generator sends to loopback only")
    subscriptions = json.loads(Path(args.subscriptions).read_text())
    requests = build(subscriptions, args.events, parts.netloc)
    outcome = asyncio.run(run(args.url, requests, args.concurrency, args.seconds))
    sent = [
        {
            "key": requests[index]["key"],
            "client_id": requests[index]["client_id"],
            "month": requests[index]["month"],
            "replay": requests[index]["replay"],
            "status": status,
            "sent_at": sent_at,
            "latency_ms": round(latency * 1000, 3),
        }
        for index, status, sent_at, latency in outcome["results"]
    ]
    Path(args.out).write_text(json.dumps({"wall_s": outcome["wall_s"], "sent": sent}))


if __name__ == "__main__":
    main()
