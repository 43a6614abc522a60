"""Every hosted page in a real browser: labels, keyboard order, the CSP header and a console
without errors or CSP violations, field errors tied to their inputs and announced, a
screenshot at desktop width and at phone width in dark mode (test-artifacts/screenshots/),
and the client imported from another origin."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from browser_a11y import (
    field_error,
    positive_tabindex,
    tab_order,
    tabbable_in_dom_order,
    unlabelled_inputs,
)
from browser_harness import PHONE, OpenContext, screenshot_path
from browser_site import Site, link_in, wait_for_mail
from browser_steps import User, expect_profile, register_by_api, sign_in
from playwright.sync_api import Page, Response, expect
from support import Mailbox

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

# The pages' policy (/work/briefs/pages.md): every directive must be there, exactly.
CSP_DIRECTIVES = {"default-src 'none'", "script-src 'self'", "style-src 'self'",
                  "connect-src 'self'", "img-src 'self' data:", "form-action 'self'",
                  "base-uri 'none'", "frame-ancestors 'none'"}


@dataclass
class Stop:
    """One page of the tour: its screenshot name, its address, and what shows it is ready."""

    name: str
    path: str
    ready: Callable[[Page], None]


def heading(text: str) -> Callable[[Page], None]:
    return lambda page: expect(page.get_by_role("heading", level=1)).to_have_text(text)


def status(text: str) -> Callable[[Page], None]:
    return lambda page: expect(page.get_by_role("status").first).to_contain_text(text)


def tour(site: Site, user: User, mailbox: Mailbox) -> tuple[list[Stop], list[Stop]]:
    """The pages for a signed-out visitor, then for a signed-in one. The verify link is a real
    one (the page spends it on load); reset and not-me only read theirs until submitted."""
    verify = link_in(wait_for_mail(mailbox, user.email, "Confirm your email"))
    signed_out = [
        Stop("signin", "/auth/signin", heading("Sign in")),
        Stop("signin-reason", "/auth/signin#reason=token_reused", status("used twice")),
        Stop("signup", "/auth/signup", heading("Create an account")),
        Stop("forgot", "/auth/forgot", heading("Forgot your password?")),
        Stop("reset", "/auth/reset#token=not-spent-until-submitted", heading("Set a new password")),
        Stop("verify", verify.removeprefix(site.url), status("Your email address is verified.")),
        Stop("not-me", "/auth/not-me#token=not-spent-until-submitted", heading("This wasn't me")),
    ]
    signed_in = [
        Stop("profile", "/auth/profile", lambda page: expect_profile(page, user)),
        Stop("sessions", "/auth/sessions",
             lambda page: expect(page.get_by_role("button", name="Revoke")).to_have_count(1)),
    ]
    return signed_out, signed_in


def visit(page: Page, stop: Stop) -> Response | None:
    """A full load of the stop's page (from signin to signin#reason=... would only change the
    fragment), ready."""
    page.goto("about:blank")
    response = page.goto(stop.path)
    stop.ready(page)
    return response


def assert_csp(response: Response | None) -> None:
    assert response is not None and response.ok, response
    policy = response.headers.get("content-security-policy", "")
    directives = {d.strip() for d in policy.split(";") if d.strip()}
    assert not CSP_DIRECTIVES - directives, policy
    assert "unsafe" not in policy, policy


def assert_accessible(page: Page, name: str) -> None:
    assert unlabelled_inputs(page) == [], f"{name}: inputs without a label"
    assert positive_tabindex(page) == [], f"{name}: a positive tabindex breaks the order"
    expected = tabbable_in_dom_order(page)
    assert expected, name
    assert tab_order(page, len(expected)) == expected, f"{name}: Tab order"


@pytest.mark.timeout(75)
def test_every_page_is_labelled_keyboard_ordered_and_under_csp(
        site: Site, open_context: OpenContext, mail_sink: tuple[Mailbox, int]) -> None:
    user = User.fresh()
    register_by_api(site, user, keep_session=True)  # a second session, to be revoked
    signed_out, signed_in = tour(site, user, mail_sink[0])
    context = open_context(site)
    page = context.new_page()
    for stop in signed_out:
        assert_csp(visit(page, stop))
        page.screenshot(path=screenshot_path(f"{stop.name}-desktop"), full_page=True)
        assert_accessible(page, stop.name)  # after the picture: Tab leaves a focus ring
    sign_in(page, user)
    for stop in signed_in:
        assert_csp(visit(page, stop))
        page.screenshot(path=screenshot_path(f"{stop.name}-desktop"), full_page=True)
        assert_accessible(page, stop.name)  # after the picture: Tab leaves a focus ring
    errors = open_context.console(context).errors  # none at all, not even a 4xx
    assert not errors, f"console errors or CSP violations: {errors}"


@pytest.mark.timeout(60)
def test_every_page_fits_a_phone(
        site: Site, open_context: OpenContext, mail_sink: tuple[Mailbox, int]) -> None:
    user = User.fresh()
    register_by_api(site, user, keep_session=True)
    signed_out, signed_in = tour(site, user, mail_sink[0])
    # In dark mode (the system setting the stylesheet follows): the desktop pictures show light.
    page = open_context(site, viewport=PHONE, is_mobile=True, has_touch=True,
                        color_scheme="dark").new_page()
    for stop in [*signed_out, None, *signed_in]:
        if stop is None:
            sign_in(page, user)
            continue
        visit(page, stop)
        page.screenshot(path=screenshot_path(f"{stop.name}-phone"), full_page=True)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{stop.name} scrolls sideways on a phone: {width} px"


@pytest.mark.timeout(45)
def test_a_field_error_is_tied_to_its_input_and_announced(
        site: Site, open_context: OpenContext) -> None:
    taken = User.fresh()
    register_by_api(site, taken)
    page = open_context(site).new_page()
    page.goto("/auth/signup")
    page.get_by_label("Username").fill(taken.username)  # the API refuses it: a field error
    page.get_by_label("Email").fill("someone.else@example.com")
    page.get_by_label("Password", exact=True).fill(taken.password)
    page.get_by_label("Repeat password").fill(taken.password)
    page.get_by_role("button", name="Create account").click()

    username = page.get_by_label("Username")
    expect(username).to_have_attribute("aria-invalid", "true")
    expect(username).to_be_focused()  # focus moves to the first invalid field
    facts = field_error(username)
    assert any(re.search("username", text, re.IGNORECASE) for text in facts["texts"]), facts
    assert facts["announced"], f"the error is in no live region (role=alert/aria-live): {facts}"
    expect(page).to_have_url(re.compile(r"/auth/signup$"))
    page.screenshot(path=screenshot_path("signup-error-desktop"), full_page=True)


@pytest.mark.timeout(45)
def test_the_client_imports_and_signs_in_from_another_origin(
        site: Site, cors_origin: str, open_context: OpenContext) -> None:
    user = User.fresh()
    register_by_api(site, user)
    module = site.url + "/api/v1/client/authsvc.js"
    page = open_context(site).new_page()
    query = urlencode({"module": module, "user": user.username, "password": user.password})
    with page.expect_response(module) as served:
        page.goto(f"{cors_origin}/?{query}")
    assert served.value.headers.get("access-control-allow-origin") == cors_origin, \
        served.value.headers
    expect(page).to_have_title(f"signed in as {user.username}")


@pytest.mark.timeout(45)
def test_wrong_passwords_and_a_rate_limit_are_said_in_words(
        limited_site: Site, open_context: OpenContext) -> None:
    """With production's rate limits on: a wrong password is an alert naming no field, and
    the login past the limit says how long to wait (from Retry-After); the form stays usable."""
    user = User.fresh()
    register_by_api(limited_site, user)
    page = open_context(limited_site).new_page()
    page.goto("/auth/signin")
    alert = page.get_by_role("alert").filter(has_text=re.compile(r"\S"))
    waits: list[str] = []
    page.on("response", lambda r: waits.append(r.headers.get("retry-after", ""))
            if r.status == 429 else None)
    for attempt in range(3):
        page.get_by_label("Username or email").fill(user.email)
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        if attempt < 2:
            expect(alert).to_contain_text(re.compile("credentials|password", re.IGNORECASE))
    expect(alert).to_contain_text(re.compile(r"Too many attempts, try again in \d+ seconds?\."))
    assert len(waits) == 1 and waits[0].isdigit(), waits
    assert f"in {waits[0]} second" in alert.inner_text()
    expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
    expect(page).to_have_url(re.compile(r"/auth/signin$"))
    page.screenshot(path=screenshot_path("signin-429-desktop"), full_page=True)
