"""The app as `make run` serves it (demo mode, its own process and port), driven by Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests import databases
from tests.conftest import free_port
from tests.processes import serve

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # package.json; `make browser` installs it
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def demo_server(data_dir: Path, database_name: str) -> Iterator[tuple[str, Path]]:
    """`app.py run --demo` in a process of its own (on a PostgreSQL database of its own in
    the PostgreSQL pass): its address and its log file."""
    # Demo mode allows private outbound addresses already; said here so a test never depends
    # on an operator's environment turning it off.
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "DATA_DIR": str(data_dir),
        "OUTBOUND_ALLOW_PRIVATE": "true",
    }
    database = None
    if databases.ON_POSTGRES:
        database = asyncio.run(databases.create_postgres_database(database_name))
        env["DATABASE_URL"] = database
    log = data_dir / "server.log"
    process, url = serve([sys.executable, "app.py", "run", "--demo"], cwd=ROOT, env=env, log=log)
    yield url, log
    process.terminate()
    process.wait(timeout=10)
    if database:
        asyncio.run(databases.drop_postgres_database(database))


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with demo_server(tmp_path_factory.mktemp("demo-data"), "browser") as (url, log):
        yield url
    server_log = log.read_text()
    # The demo keys must never reach the logs, not even in request URLs.
    assert "demo-regnskapskontor" not in server_log
    assert "demo-eget-selskap" not in server_log


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is
# open, which would break every async test that runs after it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        executable = CHROMIUM if Path(CHROMIUM).exists() else None
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


# axe-core on every state of our pages a test visits: after each load and each htmx swap
# (settled, and debounced so a burst of swaps is checked once). Injected before the page's own
# scripts through the DevTools protocol, which the page's CSP does not govern; the simulators'
# pages are not ours and are left out.
AXE_ON_EVERY_STATE = """
(() => {
  if (window.top !== window || /^\\/(tripletex|poweroffice)(\\/|$)/.test(location.pathname)) return;
  // One run at a time (axe refuses overlapping runs): the tests' own checks queue here too.
  let queue = Promise.resolve();
  window.__runAxe = () => {
    const run = queue.then(() => axe.run(document, {
      runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    }));
    queue = run.catch(() => undefined);
    return run;
  };
  let timer;
  const check = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      // A request in flight dims what it will replace: a passing state; the swap that ends
      // it is checked when it settles.
      if (document.querySelector(".htmx-request")) return;
      const found = await window.__runAxe();
      for (const v of found.violations) {
        window.reportAxeViolation(
          `${location.pathname}${location.search} ${v.id}: ${v.help} ` +
          `(${v.nodes.map(n => n.target).join(", ")})`);
      }
    }, 150);
  };
  window.addEventListener("load", check);
  document.addEventListener("htmx:afterSettle", check);
})();
"""


@contextmanager
def checked_page(
    browser: Browser,
    server: str,
    *,
    own_origin_only: bool = False,
    prepare: Callable[[BrowserContext], None] | None = None,
) -> Iterator[Page]:
    """A page whose every state axe checks (`own_origin_only`: not another site's pages,
    such as an identity provider's), failing on any violation, script error or CSP
    violation when the block ends. `prepare` sets up the context before the page opens."""
    context = browser.new_context(base_url=server, locale="nb-NO")
    if prepare is not None:
        prepare(context)
    violations: list[str] = []
    context.expose_function("reportAxeViolation", lambda found: violations.append(found))
    context.add_init_script(script=AXE.read_text(encoding="utf-8"))
    script = AXE_ON_EVERY_STATE
    if own_origin_only:
        script = script.replace(
            "if (window.top !== window",
            f"if (location.origin !== {json.dumps(server)} || window.top !== window",
        )
        assert script != AXE_ON_EVERY_STATE
    context.add_init_script(script=script)
    page = context.new_page()
    errors: list[str] = []
    # Script errors and CSP violations; an HTTP error status shows up in the tests themselves.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.wait_for_timeout(400)  # the last state's check (debounced) reports in
    context.close()
    # A CSP violation or a script error shows up here.
    assert not errors, errors
    assert not violations, sorted(set(violations))


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    with checked_page(browser, server) as page:
        yield page


def settled(page: Page) -> None:
    """Wait until htmx has no request, swap or settle under way: typing into a form while its
    swap is still settling may be undone by it on a slow machine."""
    # A locator, not wait_for_function: the page's CSP forbids the eval that one uses.
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)


def assert_accessible(page: Page) -> None:
    """axe-core's WCAG 2.1 A and AA rules on the page as it is now. Injected through the
    DevTools protocol, which the page's CSP (no inline or eval'd script) does not govern."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    violations = page.evaluate(
        """async () => (await (window.__runAxe ? window.__runAxe() : axe.run(document, {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
        }))).violations.map(v => `${v.id}: ${v.help} (${v.nodes.map(n => n.target).join(", ")})`)"""
    )
    assert violations == [], violations


def log_in(page: Page) -> None:
    page.goto("/login")
    page.get_by_label("E-post").fill("demo@example.no")
    page.get_by_label("Passord").fill("demo")
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("heading", name="Integrasjoner")).to_be_visible()


def new_integration(page: Page, key: str, description: str) -> None:
    page.goto("/integrasjoner")
    page.get_by_role("link", name="Ny integrasjon").click()
    page.get_by_label("Egen brukernøkkel").fill(key)
    page.get_by_label("Beskrivelse (Ikke fyll inn personopplysninger i feltet)").fill(description)
    page.get_by_role("button", name="Opprett").click()
    created = page.get_by_role("heading", name="Klienter", exact=True)
    expect(created.or_(page.locator("#same-key"))).to_be_visible()
    if not created.is_visible():  # an earlier test in this server has the key: one more
        page.get_by_role("button", name="Opprett likevel").click()
    expect(created).to_be_visible()


def screenshot(page: Page, name: str) -> None:
    """Kept for a person to look at, and checked by axe: every state worth a picture."""
    assert_accessible(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
