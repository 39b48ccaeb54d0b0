from pathlib import Path

from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from routes.account import AccountController
from routes.api import api_routes
from routes.attention import attention
from routes.audit import AuditLogController
from routes.auth import AuthController
from routes.change_events import change_callback
from routes.client_page import ClientPageController
from routes.clients import ClientController
from routes.exports import ExportController
from routes.guide import system_guide
from routes.health import HEALTH_ROUTES
from routes.integrations import IntegrationController
from routes.postings import PostingsController
from routes.saft import SaftImportController
from routes.settings import SettingsController
from routes.signin_settings import SigninSettingsController
from routes.sso import SsoController
from routes.users import InvitationController, UsersController

STATIC_PREFIX = "/static"
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def all_routes() -> list[ControllerRouterHandler]:
    """Every route of the product, in one list (the demo's are the demo plugin's). A new
    list per app, with the routers that must not be shared (the API's, the static files'):
    tests build many apps in one process."""
    return [
        AuthController,
        AccountController,
        attention,
        IntegrationController,
        ClientController,
        ClientPageController,
        PostingsController,
        ExportController,
        SaftImportController,
        SettingsController,
        SigninSettingsController,
        SsoController,
        UsersController,
        InvitationController,
        AuditLogController,
        system_guide,
        *HEALTH_ROUTES,
        change_callback,
        *api_routes(),
        create_static_files_router(STATIC_PREFIX, [STATIC_DIR]),
    ]
