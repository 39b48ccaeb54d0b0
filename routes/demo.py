"""Demo-mode helpers: make the simulated Tripletex grant the key one more client, or book a
voucher for a client."""

import httpx
from litestar import post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Integration
from routes.client_page import owned_client, page_context
from routes.integrations import owned_integration
from routes.params import ID_GUARDS
from services import clients as client_service
from services.auth import CurrentUser
from services.balances import format_amount
from services.connectors.registry import Connectors
from services.crypto import KeyVault
from services.demo import DEMO_SYSTEMS, grant_new_client, post_demo_voucher, simulator_root
from services.settings import Settings
from web.dependencies import Services, wants_fragment
from web.guards import ACCOUNTANT


async def simulated_integration(
    db: NamedDependency[AsyncSession],
    user: NamedDependency[CurrentUser],
    integration_id: FromPath[int],
) -> Integration:
    """The user's integration, if its system's simulator runs here; 404 otherwise."""
    integration = await owned_integration(db, user, integration_id)
    if integration.system not in DEMO_SYSTEMS:
        raise NotFoundException()
    return integration


@post(
    "/demo/integrasjoner/{integration_id:int}/ny-klient",
    status_code=200,
    dependencies={"integration": Provide(simulated_integration)},
    guards=ID_GUARDS,
    opt=ACCOUNTANT,
)
async def grant_client(
    vault: NamedDependency[KeyVault],
    settings: NamedDependency[Settings],
    http: NamedDependency[httpx.AsyncClient],
    integration: NamedDependency[Integration],
) -> Template:
    name = await grant_new_client(
        http, simulator_root(settings), vault.decrypt(integration.key_ciphertext)
    )
    return Template("partials/demo_notice.html", context={"name": name})


@post(
    "/demo/integrasjoner/{integration_id:int}/klienter/{client_id:int}/bilag",
    status_code=200,
    dependencies={"integration": Provide(simulated_integration)},
    guards=ID_GUARDS,
    opt=ACCOUNTANT,
)
async def book_voucher(
    request: HTMXRequest,
    db: NamedDependency[AsyncSession],
    user: NamedDependency[CurrentUser],
    settings: NamedDependency[Settings],
    http: NamedDependency[httpx.AsyncClient],
    integration: NamedDependency[Integration],
    connectors: NamedDependency[Connectors],
    services: NamedDependency[Services],
    client_id: FromPath[int],
) -> Template:
    """Demo: bokfør et bilag i <system> — the simulator books a voucher for the client, which
    the next sync brings into the saldobalanse (for a system without webhooks, the demo
    polls the client at once)."""
    client = await owned_client(db, integration, client_id)
    voucher = await post_demo_voucher(
        http, settings, integration.system, client.erp_id, client.org_number
    )
    system = connectors.describe(integration.system)
    if not system.capabilities.webhooks and client.active:
        # No callback will come: the demo brings the client's next poll forward.
        await client_service.poll_now(db, client)
        if services.sync_runner is not None:
            services.sync_runner.wake()
    notice = {"voucher": voucher, "kr": format_amount, "system_name": system.display_name}
    if wants_fragment(request):
        return Template("partials/demo_voucher_notice.html", context=notice)
    context = await page_context(db, settings, user, integration, client, demo_notice=True)
    return Template("pages/client.html", context={**context, **notice})


DEMO_ROUTES = [grant_client, book_voucher]
