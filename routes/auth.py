from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from litestar_htmx import HTMXRequest
from sqlmodel.ext.asyncio.session import AsyncSession

from models import User
from models.base import utcnow
from routes.forms import Form, field
from services import oidc, signin, totp
from services.auth import LoginLocked, SsoRequired, log_in
from services.crypto import KeyVault
from services.passwords import MAX_LENGTH
from services.settings import Settings
from web.guards import PUBLIC
from web.sessions import rotate_session_id


class AuthController(Controller):
    @get("/login")
    async def login_page(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> Template | Redirect:
        if request.session and request.session.get("user_id"):
            return Redirect("/integrasjoner")
        sso = await oidc.login_context(db, settings.oidc, request.query_params.get("sso"))
        return Template("pages/login.html", context={"email": "", "error": None, **sso})

    @post("/login", status_code=200, opt=PUBLIC)
    async def login(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        data: Form,
    ) -> Template | Redirect:
        email = field(data, "email")[:320]
        password = field(data, "password")[:MAX_LENGTH]
        address = client_address(request)
        result = await log_in(
            db, email, password, address, signing_in=True, oidc_config=settings.oidc
        )
        if isinstance(result, SsoRequired):
            await signin.failed(db, email, address, signin.SSO_REQUIRED)
            sso = await oidc.login_context(db, settings.oidc, None)
            return _login_page(email, result.message(), 403, sso)
        if isinstance(result, LoginLocked):
            if reason := signin.locked_reason(result, signin.WRONG_PASSWORD):
                await signin.failed(db, email, address, reason)
            return _login_page(email, result.message(), 429)
        if result is None:
            await signin.failed(db, email, address, signin.WRONG_PASSWORD)
            sso = await oidc.login_context(db, settings.oidc, None)
            return _login_page(email, "Feil e-post eller passord.", 422, sso)
        assert result.id is not None
        step = await signin.second_step(db, result)
        if step is None:
            await signin.signed_in(db, result, address, second_factor="nei")
            _start_session(request, result)
            return Redirect(HOME, status_code=303)
        return to_second_step(request, result.id, step)

    @get("/login/tofaktor")
    async def code_page(
        self, request: HTMXRequest, db: NamedDependency[AsyncSession]
    ) -> Template | Redirect:
        user = await _pending_user(request, db, signin.CODE)
        if user is None:
            return Redirect("/login")
        return _code_page(error=None, status_code=200)

    @post("/login/tofaktor", status_code=200, opt=PUBLIC)
    async def code(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        vault: NamedDependency[KeyVault],
        data: Form,
    ) -> Template | Redirect:
        user = await _pending_user(request, db, signin.CODE)
        if user is None:
            request.clear_session()
            return _login_page("", _TIMED_OUT, 422)
        address = client_address(request)
        passed = await totp.check_code(db, vault, user, field(data, "code")[:64], address)
        if isinstance(passed, totp.CodeLocked):
            if reason := signin.locked_reason(passed.locked, signin.WRONG_CODE):
                await signin.failed(db, user, address, reason)
            return _code_page(error=passed.message(), status_code=429)
        if passed is None:
            await signin.failed(db, user, address, signin.WRONG_CODE)
            return _code_page(error="Feil kode. Prøv igjen.", status_code=422)
        await signin.signed_in(db, user, address, second_factor=passed)
        _start_session(request, user)
        return Redirect(HOME, status_code=303)

    @get("/login/tofaktor/oppsett")
    async def setup_page(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        vault: NamedDependency[KeyVault],
    ) -> Template | Redirect:
        """The office requires the second factor and this person has none: set it up
        before anything else."""
        user = await _pending_user(request, db, signin.SETUP)
        if user is None:
            return Redirect("/login")
        if user.totp_enabled_at is not None:
            return _to_code_step(request, user)
        setup = totp.pending_setup(vault, user) or await totp.start_setup(db, vault, user)
        return _forced_setup_page(setup, error=None, status_code=200)

    @post("/login/tofaktor/oppsett", status_code=200, opt=PUBLIC)
    async def setup(
        self,
        request: HTMXRequest,
        db: NamedDependency[AsyncSession],
        vault: NamedDependency[KeyVault],
        data: Form,
    ) -> Template | Redirect:
        user = await _pending_user(request, db, signin.SETUP)
        if user is None:
            request.clear_session()
            return _login_page("", _TIMED_OUT, 422)
        if user.totp_enabled_at is not None:
            return _to_code_step(request, user)
        address = client_address(request)
        setup = totp.pending_setup(vault, user)
        if setup is None:
            return Redirect("/login/tofaktor/oppsett", status_code=303)
        actor = signin.actor_of(user, address)
        try:
            codes = await totp.confirm_setup(db, vault, user, field(data, "code")[:64], actor)
        except totp.TotpError as exc:
            return _forced_setup_page(setup, error=exc.message, status_code=422)
        await signin.signed_in(db, user, address, second_factor=totp.APP)
        _start_session(request, user)
        return Template(
            "pages/totp_recovery_codes.html",
            context={"codes": codes, "next": HOME, "enabled": True},
        )

    @post("/logout", status_code=200, opt=PUBLIC)
    async def logout(self, request: HTMXRequest, db: NamedDependency[AsyncSession]) -> Redirect:
        user_id = request.session.get("user_id") if request.session else None
        if isinstance(user_id, int):
            await signin.signed_out(db, user_id, client_address(request))
        request.clear_session()
        return Redirect("/login", status_code=303)

    @get("/")
    async def home(self) -> Redirect:
        return Redirect("/integrasjoner")


HOME = "/integrasjoner"
_STEP_PATHS = {signin.CODE: "/login/tofaktor", signin.SETUP: "/login/tofaktor/oppsett"}
_TIMED_OUT = "Påloggingen tok for lang tid. Logg inn på nytt."


def _login_page(
    email: str, error: str, status_code: int, sso: dict[str, object] | None = None
) -> Template:
    return Template(
        "pages/login.html",
        context={"email": email, "error": error, **(sso or {})},
        status_code=status_code,
    )


def to_second_step(request: Request, user_id: int, step: str) -> Redirect:
    """Not signed in yet: the session (under a fresh id) holds only the pending step (a
    password just checked, or just chosen when taking an invitation)."""
    rotate_session_id(request)
    request.set_session(signin.Pending(user_id, utcnow(), step).as_session())
    return Redirect(_STEP_PATHS[step], status_code=303)


def _to_code_step(request: Request, user: User) -> Redirect:
    """The second factor was set up meanwhile (in another tab): the pending sign-in now
    waits for a code from it, as one at /login would."""
    assert user.id is not None
    request.set_session(signin.Pending(user.id, utcnow(), signin.CODE).as_session())
    return Redirect(_STEP_PATHS[signin.CODE], status_code=303)


def _start_session(request: HTMXRequest, user: User) -> None:
    """The session, under a fresh id, now names the person."""
    rotate_session_id(request)
    request.set_session({"user_id": user.id})


async def _pending_user(request: HTMXRequest, db: AsyncSession, step: str) -> User | None:
    pending = signin.Pending.of_session(request.session if request.session else None, step)
    return await signin.pending_user(db, pending) if pending else None


def _code_page(*, error: str | None, status_code: int) -> Template:
    return Template("pages/login_totp.html", context={"error": error}, status_code=status_code)


def _forced_setup_page(setup: totp.Setup, *, error: str | None, status_code: int) -> Template:
    return Template(
        "pages/totp_setup.html",
        context={
            "setup": setup,
            "error": error,
            "action": "/login/tofaktor/oppsett",
            "forced": True,
        },
        status_code=status_code,
    )


def client_address(request: Request) -> str:
    """The client's address, as uvicorn gives it: behind a proxy listed in
    FORWARDED_ALLOW_IPS, the address that proxy forwarded for."""
    return request.client.host if request.client else "unknown"
