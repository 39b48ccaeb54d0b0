"""A separate process that claims one PowerOffice Go client and syncs it: the PowerOffice
crash test kills it mid-way.

    python -m tests.poweroffice_sync_worker DATABASE_URL POWEROFFICE_BASE_URL CLIENT_ID \
        LEASE_SECONDS TODAY
(ENCRYPTION_KEY in the environment; TODAY as YYYY-MM-DD, the simulator's day.) The client's
own key is read from the database by the engine; the application and subscription keys are
the simulator's demo keys.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import date, timedelta

from services.connectors.poweroffice import (
    DEMO_APPLICATION_KEY,
    DEMO_SUBSCRIPTION_KEY,
    PowerOfficeClient,
    PowerOfficeConnector,
)
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.db import create_engine, create_session_factory
from services.outbound import outbound
from services.sync import leases
from services.sync.engine import SyncEngine, SyncSettings


async def main(
    database_url: str, base_url: str, client_id: int, lease_seconds: float, today: date
) -> None:
    factory = create_session_factory(create_engine(database_url))
    lease = timedelta(seconds=lease_seconds)
    async with factory() as db:
        assert await leases.claim(db, client_id, f"worker:{os.getpid()}", lease)
    async with outbound(10) as out:
        connector = PowerOfficeConnector(
            PowerOfficeClient(
                out.erp,
                base_url=base_url,
                application_key=DEMO_APPLICATION_KEY,
                subscription_key=DEMO_SUBSCRIPTION_KEY,
            )
        )
        engine = SyncEngine(
            factory,
            KeyVault((os.environ["ENCRYPTION_KEY"],)),
            Connectors([connector]),
            SyncSettings(lease=lease),
            today=lambda: today,
        )
        await engine.sync_client(client_id, trigger="schedule")


if __name__ == "__main__":
    url, base, client, seconds, day = sys.argv[1:6]
    asyncio.run(main(url, base, int(client), float(seconds), date.fromisoformat(day)))
