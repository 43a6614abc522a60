"""Issue 11 review (branch attack): what the hosted pages make of hostile address data, in
Chromium. The pages' files come from the app itself (through httpx's ASGI transport, headers
and CSP included), so no server runs; the full flows are test_browser_*.py's."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from test_ui_routes import ON, get

from service.http import ui

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SITE = "http://localhost:9"  # never reached: every request is answered by the route below


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.skip("no Chromium")
    # Asked before Playwright starts its event loop (get() runs one of its own).
    paths = [ui.CLIENT_PATH, *(ui.PAGES_PREFIX + name for name in ui.PAGES),
             *(f"{ui.PAGES_PREFIX}assets/{path.name}" for path in ui.PAGES_DIR.iterdir()
               if ui.ASSET_NAME.fullmatch(path.name))]
    answers = {path: get(ON, path) for path in paths}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page()

        def answer(route: Any) -> None:
            found = answers.get(route.request.url.removeprefix(SITE).split("#")[0])
            if found is None:
                route.fulfill(status=404, body="")
            else:
                route.fulfill(status=found.status_code, headers=dict(found.headers),
                              body=found.content)

        tab.route(f"{SITE}/**", answer)
        yield tab
        browser.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("reason", ["constructor", "__proto__", "toString", "hasOwnProperty"])
def test_the_reason_fragment_shows_only_the_sign_in_pages_own_messages(page: Any,
                                                                       reason: str) -> None:
    """#reason= names a message of the page's own; any other name is the default message,
    never what an object inherits ("function Object() { [native code] }")."""
    page.goto(f"{SITE}{ui.PAGES_PREFIX}signin#reason={reason}")
    box = page.locator("#signed-out-reason")
    box.wait_for(state="attached")
    page.wait_for_function("document.getElementById('signed-out-reason').textContent !== ''")
    assert box.text_content() == "You were signed out. Sign in again."
