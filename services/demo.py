"""Demo mode: the Tripletex simulator served beside the app, reached over real HTTP."""

from __future__ import annotations

import httpx
from litestar.types import ASGIApp, Receive, Scope, Send

SIMULATOR_PREFIX = "/tripletex"
DEMO_KEYS = {
    "demo-regnskapskontor": "regnskapskontorets nøkkel med klienttilgang",
    "demo-eget-selskap": "nøkkel for regnskapskontorets eget selskap",
}


def with_simulator(app: ASGIApp) -> ASGIApp:
    """Send /tripletex/... to the simulator and everything else (lifespan too) to the app."""
    from services.tripletex_sim import create_simulator_app, seed_demo

    simulator = create_simulator_app(seed_demo(), prefix=SIMULATOR_PREFIX)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (
            path == SIMULATOR_PREFIX or path.startswith(SIMULATOR_PREFIX + "/")
        ):
            await simulator(scope, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch


async def grant_new_client(
    http: httpx.AsyncClient, simulator_root: str, employee_token: str
) -> str:
    """Ask the simulator to give the key access to one more client; returns its name."""
    response = await http.post(
        f"{simulator_root}/_sim/grant-client", json={"employeeToken": employee_token}
    )
    response.raise_for_status()
    return str(response.json()["name"])
