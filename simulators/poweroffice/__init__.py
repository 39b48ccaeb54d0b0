"""An in-memory, deterministic simulator of the PowerOffice Go v2 API subset the app needs:
onboarding (with an approval page), the OAuth token endpoint, GeneralLedgerAccounts,
TrialBalance, AccountTransactions and ClientIntegrationInformation.

Mount `create_poweroffice_app(seed_demo())`; point a client at `{base}/v2`, its token
requests at `{base}/OAuth/Token`. Steer it through `PowerOfficeState` or over HTTP under
`{base}/_sim` (see control.py).
"""

from simulators.poweroffice.app import SUBSCRIPTION_HEADER, create_poweroffice_app
from simulators.poweroffice.faults import Faults
from simulators.poweroffice.state import (
    DEMO_APPLICATION_KEY,
    DEMO_SUBSCRIPTION_KEY,
    DEMO_USER_EMAIL,
    PowerOfficeState,
    seed_demo,
)

__all__ = [
    "DEMO_APPLICATION_KEY",
    "DEMO_SUBSCRIPTION_KEY",
    "DEMO_USER_EMAIL",
    "SUBSCRIPTION_HEADER",
    "Faults",
    "PowerOfficeState",
    "create_poweroffice_app",
    "seed_demo",
]
