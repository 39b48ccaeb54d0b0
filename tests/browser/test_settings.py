"""Innstillinger in Chromium: an API key made, used and revoked; a webhook set up, tested
against a real receiver and seen in the leveranselogg."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.sync_api import Page, expect
from standardwebhooks.webhooks import Webhook

from tests.browser.conftest import ARTIFACTS, log_in, screenshot

pytestmark = pytest.mark.browser

TOKEN = re.compile(r"erpapi_[A-Za-z0-9_-]{43}")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a loopback port that records every request and answers 204."""
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            received.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(f"http://127.0.0.1:{server.server_port}/hooks/erp", received)
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def open_settings(page: Page, tab: str, heading: str | None = None) -> None:
    page.get_by_role("link", name="Innstillinger").click()
    page.get_by_role("navigation", name="Innstillinger").get_by_role("link", name=tab).click()
    expect(page.get_by_role("heading", name=heading or tab, exact=True)).to_be_visible()


def keep_screenshot(page: Page, name: str, copy_to: str) -> None:
    screenshot(page, name)
    shutil.copy(ARTIFACTS / f"{name}.png", copy_to)


def test_api_key_is_shown_once_works_and_stops_working_when_revoked(
    page: Page, server: str
) -> None:
    log_in(page)
    open_settings(page, "API-nøkler")
    page.get_by_label("Navn").fill("Rapportering i nettleser")
    page.get_by_role("button", name="Ny API-nøkkel").click()

    shown = page.get_by_label("Den nye API-nøkkelen")
    expect(shown).to_be_visible()
    token = shown.input_value()
    assert TOKEN.fullmatch(token), token
    assert len(TOKEN.findall(page.content())) == 1, "the token is on the page exactly once"
    row = page.locator("table.tokens tr", has_text="Rapportering i nettleser")
    expect(row).to_contain_text("Aktiv")
    keep_screenshot(page, "innstillinger-api-nokler", "/tmp/settings_api.png")

    # Used from a downstream product: the synced clients of the office.
    response = httpx.get(
        f"{server}/api/v1/clients", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["data"], list)

    # After a reload the token is gone for good; the list shows its first characters only.
    page.reload()
    expect(page.get_by_label("Den nye API-nøkkelen")).to_have_count(0)
    assert token not in page.content()
    prefix = row.locator("td code").inner_text().rstrip("…")
    assert token.startswith(prefix) and len(prefix) < len(token)
    expect(row.locator("td").nth(3)).not_to_have_text("aldri")  # the API call above

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Trekk tilbake").click()
    expect(row).to_contain_text("Trukket tilbake")
    expect(row.get_by_role("button", name="Trekk tilbake")).to_have_count(0)
    response = httpx.get(
        f"{server}/api/v1/clients", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 401, response.text


def test_webhook_test_notification_is_signed_and_logged(page: Page, receiver: Receiver) -> None:
    log_in(page)
    open_settings(page, "Varsler", "Webhook-varsler")
    page.get_by_label("Adresse (URL)").fill(receiver.url)
    page.get_by_role("button", name="Opprett webhook").click()
    expect(page.get_by_role("status").filter(has_text="Varslene sendes hit")).to_be_visible()
    secret = page.get_by_label("Signeringshemmeligheten").input_value()
    assert secret.startswith("whsec_")

    page.get_by_role("button", name="Send testvarsel").click()
    expect(page.get_by_text("Testvarselet ble levert.")).to_be_visible()
    log = page.locator("#notification-log")
    delivery = log.locator("tr.delivery", has_text="webhook.test")
    expect(delivery).to_have_count(1)
    expect(delivery.locator(".delivery-status")).to_have_text("Levert")
    expect(delivery.locator("ol.attempts li")).to_contain_text("HTTP 204")
    keep_screenshot(page, "innstillinger-varsler", "/tmp/settings_webhook.png")

    # What the receiver got (before the page answered) verifies with the Standard Webhooks
    # reference library.
    tests = [r for r in receiver.requests if b'"webhook.test"' in r.body]
    assert len(tests) == 1
    received = tests[0]
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert header in received.headers, header
    assert received.headers["webhook-signature"].startswith("v1,")
    event = Webhook(secret).verify(received.body, received.headers)
    assert event["type"] == "webhook.test"
    assert event["data"] == {"message": "Testvarsel"}
