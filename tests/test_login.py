import re

import pytest
from litestar.testing import AsyncTestClient

from services.settings import Settings
from tests.conftest import PASSWORD, add_user, csrf

pytestmark = pytest.mark.anyio


@pytest.fixture
async def anonymous(settings: Settings):
    from app import create_app

    await add_user(settings, "regnskap@kontor-a.no", "Kontor A AS")
    async with AsyncTestClient(create_app(settings)) as test_client:
        await test_client.get("/login")
        yield test_client


async def test_login_page_has_the_fields(anonymous: AsyncTestClient) -> None:
    page = (await anonymous.get("/login")).text
    for label in ("E-post", "Passord", "Logg inn"):
        assert label in page


async def test_pages_send_anonymous_visitors_to_login(anonymous: AsyncTestClient) -> None:
    response = await anonymous.get("/integrasjoner", follow_redirects=False)
    assert response.status_code in (302, 303, 307)
    assert response.headers["location"] == "/login"
    htmx_response = await anonymous.get("/integrasjoner", headers={"HX-Request": "true"})
    assert htmx_response.headers["HX-Redirect"] == "/login"


@pytest.mark.parametrize(
    ("email", "password"),
    [("regnskap@kontor-a.no", "feil-passord"), ("ukjent@kontor-a.no", PASSWORD), ("", "")],
)
async def test_wrong_credentials_get_a_clear_message(
    anonymous: AsyncTestClient, email: str, password: str
) -> None:
    response = await anonymous.post(
        "/login", data={"email": email, "password": password, "_csrf_token": csrf(anonymous)}
    )
    assert response.status_code == 422
    assert "Feil e-post eller passord." in response.text
    assert (await anonymous.get("/integrasjoner", follow_redirects=False)).status_code != 200


async def test_login_and_logout(anonymous: AsyncTestClient) -> None:
    response = await anonymous.post(
        "/login",
        data={
            "email": "Regnskap@Kontor-A.no ",
            "password": PASSWORD,
            "_csrf_token": csrf(anonymous),
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    session_cookie = next(h for h in response.headers.get_list("set-cookie") if "erp_session=" in h)
    assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
    page = await anonymous.get("/integrasjoner")
    assert "Logg ut" in page.text and "Kontor A AS" in page.text
    await anonymous.post("/logout", data={"_csrf_token": csrf(anonymous)})
    assert (await anonymous.get("/integrasjoner", follow_redirects=False)).status_code != 200


async def test_login_without_csrf_token_is_refused(anonymous: AsyncTestClient) -> None:
    response = await anonymous.post(
        "/login", data={"email": "regnskap@kontor-a.no", "password": PASSWORD}
    )
    assert response.status_code == 403


async def test_pages_forbid_inline_scripts(anonymous: AsyncTestClient) -> None:
    response = await anonymous.get("/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "<script>" not in response.text  # only <script src=...>


async def test_login_issues_a_new_session_id(anonymous: AsyncTestClient) -> None:
    planted = "a" * 64  # an id an attacker managed to set in the victim's browser
    host = "testserver.local"
    anonymous.cookies.set("erp_session", planted, domain=host)
    response = await anonymous.post(
        "/login",
        data={
            "email": "regnskap@kontor-a.no",
            "password": PASSWORD,
            "_csrf_token": csrf(anonymous),
        },
        follow_redirects=False,
    )
    issued = re.search(r"erp_session=([^;]+)", response.headers["set-cookie"])
    assert issued is not None and issued.group(1) != planted
    # The attacker, holding the planted id, is not logged in.
    anonymous.cookies.set("erp_session", planted, domain=host)
    response = await anonymous.get("/integrasjoner", follow_redirects=False)
    assert response.headers["location"] == "/login"
