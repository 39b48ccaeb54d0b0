from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from routes.forms import Form, field
from services.auth import LoginLocked, log_in
from services.passwords import MAX_LENGTH
from web.guards import PUBLIC
from web.sessions import rotate_session_id


class AuthController(Controller):
    @get("/login")
    async def login_page(self, request: HTMXRequest) -> Template | Redirect:
        if request.session and request.session.get("user_id"):
            return Redirect("/integrasjoner")
        return Template("pages/login.html", context={"email": "", "error": None})

    @post("/login", status_code=200, opt=PUBLIC)
    async def login(
        self, request: HTMXRequest, db: NamedDependency[AsyncSession], data: Form
    ) -> Template | Redirect:
        email = field(data, "email")[:320]
        password = field(data, "password")[:MAX_LENGTH]
        result = await log_in(db, email, password, client_address(request))
        if isinstance(result, LoginLocked):
            return _login_page(email, result.message(), 429)
        if result is None:
            return _login_page(email, "Feil e-post eller passord.", 422)
        rotate_session_id(request)
        request.set_session({"user_id": result.id})
        return Redirect("/integrasjoner", status_code=303)

    @post("/logout", status_code=200, opt=PUBLIC)
    async def logout(self, request: HTMXRequest) -> Redirect:
        request.clear_session()
        return Redirect("/login", status_code=303)

    @get("/")
    async def home(self) -> Redirect:
        return Redirect("/integrasjoner")


def _login_page(email: str, error: str, status_code: int) -> Template:
    return Template(
        "pages/login.html", context={"email": email, "error": error}, status_code=status_code
    )


def client_address(request: Request) -> str:
    """The client's address, as uvicorn gives it: behind a proxy listed in
    FORWARDED_ALLOW_IPS, the address that proxy forwarded for."""
    return request.client.host if request.client else "unknown"
