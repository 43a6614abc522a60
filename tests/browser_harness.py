"""Fixtures of the browser tests (a pytest plugin): Debian's Chromium driven by Playwright,
the two test sites (refresh-token rotation off and on) with their SMTP sink, and a fresh
browser context per scenario whose console errors fail the test.

Playwright's own browser downloads are never used: the closed network refuses them, and CI
installs Debian's `chromium` instead (scripts/test)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_other_origin import OtherOrigin, other_origin
from browser_site import Site, running_site
from needed_tools import chromium_path
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Playwright,
    WebError,
    sync_playwright,
)
from playwright.sync_api import expect as playwright_expect
from support import Mailbox, smtp_sink

# The closed network refuses Google's hosts: nothing may phone home or wait on it.
CHROMIUM_ARGS = ["--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ACTION_TIMEOUT_MS = 10_000
# What a page's fetch of a refused token or a wrong password prints: expected in the flows.
EXPECTED_CONSOLE = re.compile(r"^Failed to load resource: the server responded with a status "
                              r"of 4\d\d")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}

# Auto-waiting assertions wait this long: the pages wait on a server and worker that share two
# busy cores with the rest of the suite.
playwright_expect.set_options(timeout=ACTION_TIMEOUT_MS)


def launch_args() -> list[str]:
    # Chromium's sandbox refuses to start as root.
    return [*CHROMIUM_ARGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Module-scoped, not session-scoped: the sync API drives its own event loop, which must
    be gone before a later test on this worker runs asyncio itself."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    path = chromium_path()
    assert path, "no Chromium (the conftest check skips browser tests then)"
    browser = playwright.chromium.launch(executable_path=path, args=launch_args(),
                                         timeout=30_000)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def mail_sink() -> Iterator[tuple[Mailbox, int]]:
    """The SMTP server both sites' workers deliver to (tests tell mails apart by address)."""
    with smtp_sink() as sink:
        yield sink


@pytest.fixture(scope="session")
def other_origin_server() -> Iterator[OtherOrigin]:
    """Another origin serving a page that imports the client (and the files tests add),
    listed in the site's [cors] allow_origins."""
    with other_origin() as origin:
        yield origin


@pytest.fixture(scope="session")
def cors_origin(other_origin_server: OtherOrigin) -> str:
    return other_origin_server.url


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory, redis_url: str, sqlite_template: Path,
         mail_sink: tuple[Mailbox, int], cors_origin: str) -> Iterator[Site]:
    """Refresh-token rotation off (the original contract)."""
    with running_site(tmp_path_factory.mktemp("site"), redis_url, mail_sink[1], sqlite_template,
                      rotation=False, cors_origins=(cors_origin,)) as started:
        yield started


@pytest.fixture(scope="session")
def rotation_site(tmp_path_factory: pytest.TempPathFactory, redis_url: str,
                  sqlite_template: Path, mail_sink: tuple[Mailbox, int]) -> Iterator[Site]:
    """Refresh-token rotation on, with a one-second grace."""
    with running_site(tmp_path_factory.mktemp("rotation-site"), redis_url, mail_sink[1],
                      sqlite_template, rotation=True) as started:
        yield started


@pytest.fixture(scope="module")
def limited_site(tmp_path_factory: pytest.TempPathFactory, redis_url: str,
                 sqlite_template: Path, mail_sink: tuple[Mailbox, int]) -> Iterator[Site]:
    """Rate limits on, as in production: two logins per minute per client."""
    with running_site(tmp_path_factory.mktemp("limited-site"), redis_url, mail_sink[1],
                      sqlite_template, rotation=False,
                      extra={"AUTH_RATE_LIMIT_ENABLED": "true",
                             "AUTH_RATE_LIMIT_LOGIN": "2/minute"}) as started:
        yield started


class ConsoleLog:
    """Console errors and uncaught exceptions of every page of a context (CSP violations are
    console errors in Chromium)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.location.get('url', '')}: {message.text}")

    def on_web_error(self, error: WebError) -> None:
        self.errors.append(f"uncaught: {error.error}")

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not EXPECTED_CONSOLE.search(e.split(": ", 1)[-1])]


# Chromium prints CSP violations to the console too; this says which directive, for certain.
REPORT_CSP_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (event) =>
    console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI}`));"""


class Contexts:
    """`contexts(site, **options)`: a fresh browser context (its own storage and locks) aimed at
    `site`, whose console is recorded."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[tuple[BrowserContext, ConsoleLog]] = []
        self.sites: dict[int, tuple[Site, int]] = {}

    def __call__(self, site: Site, **options: Any) -> BrowserContext:
        options.setdefault("viewport", DESKTOP)
        context = self.browser.new_context(base_url=site.url, **options)
        context.set_default_timeout(ACTION_TIMEOUT_MS)
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        log = ConsoleLog()
        context.on("console", log.on_console)
        context.on("weberror", log.on_web_error)
        self.opened.append((context, log))
        self.sites.setdefault(id(site), (site, len(site.serve.output())))
        return context

    def console(self, context: BrowserContext) -> ConsoleLog:
        return next(log for opened, log in self.opened if opened is context)

    def close(self) -> None:
        for context, _ in self.opened:
            context.close()


OpenContext = Contexts


@pytest.fixture
def open_context(chromium: Browser) -> Iterator[Contexts]:
    """Fresh contexts for one test. The test fails if any page of them logged an unexpected
    console error, or if a site logged a crash meanwhile."""
    contexts = Contexts(chromium)
    yield contexts
    contexts.close()
    errors = [e for _, log in contexts.opened for e in log.unexpected()]
    assert not errors, f"console errors: {errors}"
    crashes = [c for site, since in contexts.sites.values() for c in site.crashes(since)]
    assert not crashes, f"the site logged: {crashes}"


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
