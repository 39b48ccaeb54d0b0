"""An in-memory, deterministic simulator of the subset of Tripletex API v2 the app uses.

Mount `create_simulator_app(seed_demo())` and point any Tripletex client at `{base}/v2`.
Steer it through `SimulatorState` (faults, rate limit, ledger changes, webhook subscriptions)
or the same over HTTP under `{base}/_sim` (see control.py).
"""

from simulators.tripletex.app import create_simulator_app
from simulators.tripletex.faults import Faults
from simulators.tripletex.state import (
    DEMO_ACCOUNTANT_TOKEN,
    DEMO_CONSUMER_TOKEN,
    DEMO_OWN_COMPANY_TOKEN,
    SimulatorState,
    seed_demo,
)

__all__ = [
    "DEMO_ACCOUNTANT_TOKEN",
    "DEMO_CONSUMER_TOKEN",
    "DEMO_OWN_COMPANY_TOKEN",
    "Faults",
    "SimulatorState",
    "create_simulator_app",
    "seed_demo",
]
