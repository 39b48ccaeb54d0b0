"""Single sign-on in Chromium: an administrator sets up the office's provider under
Innstillinger → Pålogging (Test tilkobling included), then signs in with Logg inn med
<provider> → the provider's page → back in the app, signed in.

The provider is a real OpenID Provider on loopback (tests/oidc_support.py). This module has
its own demo server: an office with a provider shows one more "Logg inn …" button, which the
other browser tests' log_in would find beside their own. axe checks every state of our
pages; the provider's page is someone else's and is left out, and nothing but loopback is
fetched (its page links a stylesheet on a CDN)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import (
    assert_accessible,
    checked_page,
    demo_server,
    log_in,
    screenshot,
)
from tests.oidc_support import Provider, running_provider

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

NOT_LOOPBACK = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's own demo server (see the module's docstring); the provider listens on
    loopback, which demo mode's outbound guard allows."""
    with demo_server(tmp_path_factory.mktemp("sso-demo-data"), "browser_sso") as (url, _log):
        yield url


@pytest.fixture(scope="module")
def provider(server: str) -> Iterator[Provider]:
    with running_provider() as running:
        running.register(f"{server}/login/oidc/callback")
        running.set_user(
            "demo-sub", email="demo@example.no", email_verified=True, name="Demo Demosen"
        )
        yield running


@pytest.fixture
def page(server: str, browser: Browser) -> Iterator[Page]:
    """As tests/browser/conftest.py's, with axe on our origin only and nothing off loopback;
    the server first: its set-up may run an event loop, which it cannot inside Playwright's."""

    def loopback_only(context: BrowserContext) -> None:
        context.route(NOT_LOOPBACK, lambda route: route.abort())

    with checked_page(browser, server, own_origin_only=True, prepare=loopback_only) as page:
        yield page


def test_set_up_the_provider_and_sign_in_through_it(page: Page, provider: Provider) -> None:
    log_in(page)
    page.get_by_role("link", name="Innstillinger").click()
    page.get_by_role("link", name="Pålogging").click()
    expect(page.get_by_role("heading", name="Innlogging via identitetsleverandør")).to_be_visible()
    redirect = page.get_by_label("Adresse å registrere hos leverandøren (redirect URI)")
    expect(redirect).to_have_value(re.compile(r"/login/oidc/callback$"))

    page.get_by_label("Slå på innlogging via identitetsleverandør").check()
    page.get_by_label("Navn på leverandøren").fill("Testleverandør")
    page.get_by_label("Utsteder (issuer)").fill(provider.url)
    page.get_by_label("Klient-ID").fill(provider.client_id)
    page.get_by_label("Klienthemmelighet").fill(provider.client_secret)
    page.get_by_role("button", name="Test tilkobling").click()
    expect(page.get_by_text("Fant leverandøren.")).to_be_visible()
    expect(page.get_by_label("Utsteder (issuer)")).to_have_value(provider.url)
    screenshot(page, "palogging-test-tilkobling")

    page.get_by_role("button", name="Lagre").click()
    expect(page.get_by_role("status")).to_have_text("Endringene er lagret.")
    expect(page.get_by_text("Lagret.", exact=False).first).to_be_visible()
    expect(page.get_by_label("Klienthemmelighet")).to_have_value("")
    assert_accessible(page)
    screenshot(page, "palogging-lagret")

    page.get_by_role("button", name="Logg ut").click()
    sso = page.get_by_role("link", name="Logg inn med Testleverandør")
    expect(sso).to_be_visible()
    screenshot(page, "logg-inn-med-leverandor")

    sso.click()
    expect(page).to_have_url(re.compile(re.escape(provider.url) + r"/oauth2/authorize\?"))
    page.get_by_placeholder("sub").fill("demo-sub")
    page.get_by_role("button", name="Authorize").click()

    expect(page.get_by_role("heading", name="Integrasjoner")).to_be_visible()
    expect(page.get_by_text("demo@example.no")).to_be_visible()
    assert page.url.endswith("/integrasjoner")

    # Someone the office does not know: back on the login page, told why, not signed in.
    page.get_by_role("button", name="Logg ut").click()
    provider.set_user("fremmed", email="fremmed@example.no", email_verified=True)
    page.get_by_role("link", name="Logg inn med Testleverandør").click()
    page.get_by_placeholder("sub").fill("fremmed")
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Du har ingen bruker i dette kontoret. Be en administrator i kontoret om en invitasjon."
    )
    assert "/login?sso=ingen-bruker" in page.url
    screenshot(page, "logg-inn-med-leverandor-avvist")
    page.goto("/integrasjoner")
    expect(page).to_have_url(re.compile(r"/login$"))
