from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from routes.forms import Form, field
from services.auth import authenticate
from services.session_store import rotate_session_id


class AuthController(Controller):
    @get("/login")
    async def login_page(self, request: HTMXRequest) -> Template | Redirect:
        if request.session and request.session.get("user_id"):
            return Redirect("/integrasjoner")
        return Template("pages/login.html", context={"email": "", "error": None})

    @post("/login", status_code=200)
    async def login(
        self, request: HTMXRequest, db: NamedDependency[AsyncSession], data: Form
    ) -> Template | Redirect:
        email = field(data, "email")[:320]
        user = await authenticate(db, email, field(data, "password")[:1000])
        if user is None:
            return Template(
                "pages/login.html",
                context={"email": email, "error": "Feil e-post eller passord."},
                status_code=422,
            )
        rotate_session_id(request)
        request.set_session({"user_id": user.id})
        return Redirect("/integrasjoner", status_code=303)

    @post("/logout", status_code=200)
    async def logout(self, request: HTMXRequest) -> Redirect:
        request.clear_session()
        return Redirect("/login", status_code=303)

    @get("/")
    async def home(self) -> Redirect:
        return Redirect("/integrasjoner")
