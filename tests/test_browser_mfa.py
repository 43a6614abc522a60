"""A second factor on the hosted pages (issue 13), in a real browser against a real serve +
worker: register, set up an authenticator app from the profile (the key read off the page, its
codes computed with pyotp from the real clock), the recovery codes shown once, a sign-in too old
for a sensitive action asked to confirm it is the user (step-up) before new recovery codes are
made, then sign-ins with password + app code and password + recovery code, a spent recovery
code (and one of the replaced set) refused, and a second step that ran out of tries sent back to
the password.

TOTP codes are single use: one accepted is refused again within its 30-second step. The one
wait of the test (the sign-in growing older than [mfa] step_up_max_age, 30 s, its least) also
moves the clock past the step of the code that confirmed the app, so no code is ever reused."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from browser_a11y import (
    field_error,
    positive_tabindex,
    tab_order,
    tabbable_in_dom_order,
    unlabelled_inputs,
)
from browser_harness import OpenContext, screenshot_path
from browser_site import Site, running_site
from browser_steps import API, User, expect_profile, wait_until
from playwright.sync_api import Page, expect
from support import Mailbox

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

STEP_UP_MAX_AGE = 12  # seconds: short (the tests wait it out), with room for a loaded machine
BASE32 = re.compile(r"^[A-Z2-7]{16,}$")


@pytest.fixture(scope="module")
def mfa_site(tmp_path_factory: pytest.TempPathFactory, redis_url: str,
             sqlite_template: Path, mail_sink: tuple[Mailbox, int]) -> Iterator[Site]:
    """The browser tests' site with step-up after 30 s: one wait makes a sign-in old enough."""
    with running_site(tmp_path_factory.mktemp("mfa-site"), redis_url, mail_sink[1],
                      sqlite_template, rotation=False,
                      extra={"AUTH_MFA_STEP_UP_MAX_AGE": str(STEP_UP_MAX_AGE)}) as started:
        yield started


class Statuses:
    """The status of every answer to the page's requests to API + `path`, in order."""

    def __init__(self, page: Page, path: str) -> None:
        self.seen: list[int] = []
        pattern = re.compile(re.escape(API + path) + "?$")
        page.on("response", lambda r: self.seen.append(r.status)
                if pattern.search(r.url) and r.request.method != "OPTIONS" else None)


def assert_accessible(page: Page, name: str) -> None:
    """Every input labelled, no positive tabindex, Tab through what is shown in DOM order (from
    the top: a click on the page's corner moves where Tab starts from, as a fresh load would)."""
    page.evaluate("() => window.scrollTo(0, 0)")
    page.mouse.click(1, 1)
    assert unlabelled_inputs(page) == [], f"{name}: inputs without a label"
    assert positive_tabindex(page) == [], f"{name}: a positive tabindex breaks the order"
    expected = tabbable_in_dom_order(page)
    assert tab_order(page, len(expected)) == expected, f"{name}: Tab order"


def register(page: Page, user: User) -> None:
    page.goto("/auth/signup")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_label("Repeat password").fill(user.password)
    page.get_by_role("button", name="Create account").click()
    expect_profile(page, user)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url(re.compile(r"/auth/signin(#.*)?$"))
    expect(page.get_by_label("Username or email")).to_be_visible()


def password_step(page: Page, user: User) -> None:
    """The first step of a sign-in, which asks for the second."""
    page.get_by_label("Username or email").fill(user.username)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    expect(page.get_by_label("Authentication code")).to_be_focused()
    expect(page.get_by_label("Password", exact=True)).to_be_hidden()


def verify(page: Page, label: str, code: str) -> None:
    page.get_by_label(label).fill(code)
    page.get_by_role("button", name="Verify").click()


def expect_refused(page: Page, label: str, words: str) -> None:
    """The code was refused: said on its field, which has focus, still on the second step."""
    field = page.get_by_label(label)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    expect(field).to_have_value("")
    facts = field_error(field)
    assert any(words in text for text in facts["texts"]) and facts["announced"], facts
    expect(page).to_have_url(re.compile(r"/auth/signin$"))


def another_steps_code(totp: pyotp.TOTP) -> str:
    """A code that is wrong now: an hour's steps away (pyotp accepts the neighbouring ones)."""
    wrong = totp.at(time.time() - 3600)
    assert wrong not in {totp.at(time.time() + d) for d in (-30, 0, 30)}
    return wrong


@pytest.mark.timeout(150)
def test_set_up_an_app_then_sign_in_with_its_code_and_with_recovery_codes(
        mfa_site: Site, open_context: OpenContext) -> None:
    user = User.fresh()
    context = open_context(mfa_site)
    page = context.new_page()
    regenerations = Statuses(page, "mfa/recovery-codes/")
    reauths = Statuses(page, "reauth/")
    register(page, user)
    section = page.locator("#mfa-section")
    state, left = page.locator("#mfa-state"), page.locator("#mfa-codes-left")
    expect(state).to_have_text("Off")
    expect(left).to_be_hidden()

    # Set up: the QR code (an image) and the key as text, then a code from the "app".
    section.get_by_role("button", name="Set up").click()
    secret_text = page.locator("#mfa-secret")
    expect(secret_text).to_have_text(re.compile(r"^[A-Z2-7 ]{16,}$"))
    secret = secret_text.inner_text().replace(" ", "")
    assert BASE32.fullmatch(secret), secret
    qr = page.get_by_role("img", name=re.compile("QR code"))
    expect(qr).to_be_visible()
    expect(page.get_by_label("Code from the app")).to_be_focused()
    assert qr.evaluate("(img) => img.complete && img.naturalWidth > 0"), "the QR code is no image"
    page.screenshot(path=screenshot_path("profile-mfa-setup-desktop"), full_page=True)
    assert_accessible(page, "profile, setting up")
    totp = pyotp.TOTP(secret)

    page.get_by_label("Code from the app").fill(totp.now())
    section.get_by_role("button", name="Turn on").click()
    shown = page.locator("#mfa-recovery-codes li")
    expect(shown).to_have_count(10)
    confirmed = time.time()  # the session's sign-in counts from about now (the new token's)
    first_set = shown.all_inner_texts()
    expect(section.get_by_text("shown only this once")).to_be_visible()
    expect(state).to_have_text(re.compile(r"^On"))
    expect(left).to_have_text("10 codes")
    page.screenshot(path=screenshot_path("profile-mfa-codes-desktop"), full_page=True)
    section.get_by_role("button", name="I have stored them").click()
    expect(shown).to_have_count(0)  # gone from the page, not only hidden

    # Step-up: once the sign-in is older than step_up_max_age, new codes need the password.
    wait_until(page, confirmed + STEP_UP_MAX_AGE + 1.5)
    section.get_by_role("button", name="Regenerate recovery codes").click()
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    expect(dialog).to_be_visible()
    password = dialog.get_by_label("Your password")
    expect(password).to_be_focused()
    password.fill("not the password")
    dialog.get_by_role("button", name="Continue").click()
    expect(password).to_have_attribute("aria-invalid", "true")
    page.screenshot(path=screenshot_path("profile-mfa-step-up-desktop"), full_page=True)
    password.fill(user.password)
    dialog.get_by_role("button", name="Continue").click()
    expect(dialog).to_be_hidden()
    expect(shown).to_have_count(10)
    codes = shown.all_inner_texts()
    assert not set(codes) & set(first_set), "the new set repeats the old one"
    assert regenerations.seen == [403, 200], regenerations.seen  # refused, then retried once
    assert reauths.seen == [400, 200], reauths.seen
    section.get_by_role("button", name="I have stored them").click()
    sign_out(page)

    # Password, a wrong code (said on the field), then the app's next code: a later step than
    # the one that confirmed it (spent), and within the one step of skew allowed.
    password_step(page, user)
    page.screenshot(path=screenshot_path("signin-mfa-desktop"), full_page=True)
    assert_accessible(page, "sign-in, second step")
    verify(page, "Authentication code", another_steps_code(totp))
    expect_refused(page, "Authentication code", "not right")
    verify(page, "Authentication code", totp.at(time.time() + 30))
    expect_profile(page, user)
    expect(left).to_have_text("10 codes")
    sign_out(page)

    # A recovery code instead; it works once.
    password_step(page, user)
    page.get_by_role("button", name="Use a recovery code").click()
    expect(page.get_by_label("Recovery code")).to_be_focused()
    verify(page, "Recovery code", codes[0])
    expect_profile(page, user)
    expect(left).to_have_text("9 codes")
    sign_out(page)

    password_step(page, user)
    page.get_by_role("button", name="Use a recovery code").click()
    verify(page, "Recovery code", codes[0])  # spent
    expect_refused(page, "Recovery code", "used already")
    verify(page, "Recovery code", first_set[1])  # of the set the regeneration replaced
    expect_refused(page, "Recovery code", "used already")
    verify(page, "Recovery code", codes[1].upper().replace("-", " "))  # case, dashes ignored
    expect_profile(page, user)
    expect(left).to_have_text("8 codes")
    sign_out(page)

    # Out of tries ([mfa] max_attempts, 5): back to the password, saying why.
    password_step(page, user)
    first_step = page.get_by_label("Password", exact=True)
    for _ in range(6):
        with page.expect_response(re.compile(re.escape(API + "login/mfa/") + "?$")):
            verify(page, "Authentication code", another_steps_code(totp))
        expect(page.locator("#mfa-form")).to_have_attribute("aria-busy", "false")  # answered
        if first_step.is_visible():
            break
    expect(first_step).to_be_focused()
    expect(page.get_by_role("alert")).to_contain_text("too many wrong codes")
    expect(page.get_by_role("button", name="Sign in")).to_be_enabled()
