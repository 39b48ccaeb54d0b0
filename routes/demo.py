"""Demo-mode helpers: make the simulated Tripletex grant the key one more client."""

import httpx
from litestar import post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template
from sqlmodel.ext.asyncio.session import AsyncSession

from routes.integrations import owned_integration
from services.auth import CurrentUser
from services.crypto import KeyVault
from services.demo import grant_new_client
from services.settings import Settings


@post("/demo/integrasjoner/{integration_id:int}/ny-klient", status_code=200)
async def grant_client(
    db: NamedDependency[AsyncSession],
    user: NamedDependency[CurrentUser],
    vault: NamedDependency[KeyVault],
    settings: NamedDependency[Settings],
    integration_id: FromPath[int],
    http: NamedDependency[httpx.AsyncClient],
) -> Template:
    if not settings.demo:
        raise NotFoundException()
    integration = await owned_integration(db, user, integration_id)
    name = await grant_new_client(
        http, settings.simulator_root, vault.decrypt(integration.key_ciphertext)
    )
    return Template("partials/demo_notice.html", context={"name": name})
