"""The client's React adapter (useAuth(), <RequireAuth>) on real React and react-dom in
Chromium: an app bundled from clients/js/test/browser/react-app.jsx, on another origin than a
real authsvc. The guard follows sign-in and sign-out, also those made in another tab of the
browser, without a reload; redirectTo sends a signed-out visitor away, but not a new tab that
the open ones are about to sign in. React's warnings are console errors, which fail a test."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_harness import OpenContext
from browser_other_origin import OtherOrigin
from browser_react_app import BUILD_LIMIT, app_url, serve_react_app
from browser_site import Site
from browser_steps import Tab, User, register_by_api
from npm_client import INSTALL_LIMIT
from playwright.sync_api import BrowserContext, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.node, pytest.mark.xdist_group("browser")]

# The first test also waits for npm ci (when node_modules is stale) and the build.
LIMIT = INSTALL_LIMIT + BUILD_LIMIT + 60
FALLBACK = "Sign in to see your orders"

AppUrl = Callable[[str], str]


@pytest.fixture(scope="module")
def react_app(other_origin_server: OtherOrigin, site: Site,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppUrl]:
    """The URL of a view of the app, which calls the (rotation-off) site."""
    app = serve_react_app(other_origin_server, tmp_path_factory.mktemp("react-app"))
    yield lambda view: app_url(app, site, view)


def sign_in(page: Page, user: User) -> None:
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()


def expect_signed_in(page: Page, user: User) -> None:
    """useAuth() says who, and <RequireAuth> shows its children (which use useAuth too)."""
    expect(page.get_by_role("status")).to_have_text(f"Signed in as {user.username}")
    expect(page.get_by_role("heading", name=f"Orders of {user.username}")).to_be_visible()
    expect(page.get_by_text(FALLBACK)).to_have_count(0)


def expect_signed_out(page: Page) -> None:
    expect(page.get_by_role("status")).to_have_text("Signed out")
    expect(page.get_by_text(FALLBACK)).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile("^Orders of"))).to_have_count(0)


def expect_no_console_errors(open_context: OpenContext, context: BrowserContext) -> None:
    """Said here too (the fixture checks again after the test) so that it fails the test."""
    assert not open_context.console(context).errors, open_context.console(context).errors


@pytest.mark.timeout(LIMIT)
def test_require_auth_and_use_auth_follow_sign_in_and_out_in_every_tab(
        site: Site, react_app: AppUrl, open_context: OpenContext) -> None:
    user = User.fresh()
    register_by_api(site, user)
    context = open_context(site)
    first = context.new_page()
    first.goto(react_app("guard"))
    expect_signed_out(first)
    first.evaluate("window.sameDocument = true")  # gone if anything reloads the page

    sign_in(first, user)
    expect_signed_in(first, user)

    second = context.new_page()
    second.goto(react_app("guard"))
    expect_signed_in(second, user)  # the open tab's session, over BroadcastChannel

    with second.expect_response(re.compile(r"/api/v1/auth/logout/$")) as logout:
        second.get_by_role("button", name="Sign out").click()
    assert logout.value.status == 205, logout.value.status
    expect_signed_out(second)
    expect_signed_out(first)  # re-rendered by the other tab's sign-out

    sign_in(second, user)
    expect_signed_in(second, user)
    expect_signed_in(first, user)  # and by its sign-in
    assert first.evaluate("window.sameDocument") is True, "the first tab was reloaded"
    expect_no_console_errors(open_context, context)


@pytest.mark.timeout(LIMIT)
def test_require_auth_redirects_a_signed_out_visitor_but_waits_for_the_other_tabs(
        site: Site, react_app: AppUrl, open_context: OpenContext) -> None:
    user = User.fresh()
    register_by_api(site, user)
    context = open_context(site)
    guarded = react_app("redirect")
    first = context.new_page()
    first.goto(guarded)
    expect(first.get_by_role("heading", name="Sign in to continue")).to_be_visible()
    sent_to = parse_qs(urlsplit(first.url).query)
    assert sent_to["view"] == ["signin"] and sent_to["next"] == [guarded], first.url

    sign_in(first, user)
    expect(first.get_by_role("status")).to_have_text(f"Signed in as {user.username}")

    # A new tab is signed out until the open one answers it: <RequireAuth> must wait for
    # `ready` before it redirects, or it bounces every new tab to the sign-in page.
    second = Tab(context.new_page())
    second.page.goto(guarded)
    expect(second.page.get_by_role("heading", name=f"Orders of {user.username}")).to_be_visible()
    assert not [url for url in second.visited if "view=signin" in url], second.visited

    first.get_by_role("button", name="Sign out").click()
    expect(first.get_by_role("status")).to_have_text("Signed out")
    # the other tab's sign-out sends this one away too, back here once signed in
    expect(second.page.get_by_role("heading", name="Sign in to continue")).to_be_visible()
    assert parse_qs(urlsplit(second.page.url).query)["next"] == [guarded], second.page.url
    expect_no_console_errors(open_context, context)


# Records whether `text` is ever put into the page from now on, however briefly.
WATCH_FOR_TEXT = """(text) => {
  window.textSeen = false;
  new MutationObserver((records) => {
    for (const record of records)
      for (const node of record.addedNodes)
        if (node.textContent.includes(text)) window.textSeen = true;
  }).observe(document.body, { childList: true, subtree: true });
}"""


@pytest.mark.timeout(LIMIT)
def test_a_guard_mounted_once_the_client_is_ready_never_shows_its_fallback(
        site: Site, react_app: AppUrl, open_context: OpenContext) -> None:
    """A signed-in visitor opening a guarded route would otherwise see the fallback (a sign-in
    prompt, say) flash before the children, on every mount."""
    user = User.fresh()
    register_by_api(site, user)
    context = open_context(site)
    page = context.new_page()
    page.goto(react_app("later"))
    sign_in(page, user)
    expect(page.get_by_role("status")).to_have_text(f"Signed in as {user.username}")
    page.evaluate(WATCH_FOR_TEXT, FALLBACK)
    page.get_by_role("button", name="Open orders").click()
    expect(page.get_by_role("heading", name=f"Orders of {user.username}")).to_be_visible()
    assert page.evaluate("window.textSeen") is False, "the fallback was shown to a signed-in user"
    expect_no_console_errors(open_context, context)
