from routes.account import AccountController
from routes.auth import AuthController
from routes.change_events import change_callback
from routes.clients import ClientController
from routes.demo import grant_client
from routes.guide import system_guide
from routes.health import HEALTH_ROUTES
from routes.integrations import IntegrationController
from routes.settings import SettingsController

ROUTES = [
    AuthController,
    AccountController,
    IntegrationController,
    ClientController,
    SettingsController,
    system_guide,
    grant_client,
    *HEALTH_ROUTES,
    change_callback,
]
