"""Demo-mode helpers: make the simulated Tripletex grant the key one more client."""

import httpx
from litestar import post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.response import Template

from models import Integration
from routes.integrations import owned_integration
from services.crypto import KeyVault
from services.demo import grant_new_client
from services.settings import Settings


@post(
    "/demo/integrasjoner/{integration_id:int}/ny-klient",
    status_code=200,
    dependencies={"integration": Provide(owned_integration)},
)
async def grant_client(
    vault: NamedDependency[KeyVault],
    settings: NamedDependency[Settings],
    http: NamedDependency[httpx.AsyncClient],
    integration: NamedDependency[Integration],
) -> Template:
    if not settings.demo:
        raise NotFoundException()
    name = await grant_new_client(
        http, settings.simulator_root, vault.decrypt(integration.key_ciphertext)
    )
    return Template("partials/demo_notice.html", context={"name": name})
