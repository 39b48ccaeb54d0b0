"""A separate process that claims one client and syncs it: the crash test kills it mid-way.

    python -m tests.sync_worker DATABASE_URL TRIPLETEX_BASE_URL CLIENT_ID LEASE_SECONDS
(ENCRYPTION_KEY in the environment.)
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta

from services.connectors.registry import Connectors
from services.connectors.tripletex import TripletexClient, TripletexConnector
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.outbound import outbound
from services.sync import leases
from services.sync.engine import SyncEngine, SyncSettings


async def main(database_url: str, base_url: str, client_id: int, lease_seconds: float) -> None:
    factory = create_session_factory(create_engine(database_url))
    lease = timedelta(seconds=lease_seconds)
    async with factory() as db:
        assert await leases.claim(db, client_id, f"worker:{os.getpid()}", lease)
    async with outbound(10) as out:
        connector = TripletexConnector(
            TripletexClient(out.erp, base_url=base_url, consumer_token="demo-consumer-token")
        )
        engine = SyncEngine(
            factory,
            KeyVault((os.environ["ENCRYPTION_KEY"],)),
            Connectors([connector]),
            SyncSettings(lease=lease),
        )
        await engine.sync_client(client_id, trigger="schedule")


if __name__ == "__main__":
    url, base, client, seconds = sys.argv[1:5]
    asyncio.run(main(url, base, int(client), float(seconds)))
