"""Passkeys on the hosted pages (issue 14), in real Chromium against a real serve + worker, with
the DevTools protocol's virtual authenticators standing in for the device's screen lock and for
security keys: a passkey made on the profile then signing in with no username (by autofill and
by the button), a security key as the second step after the password, and an account made
passwordless (two passkeys, the password removed after a step-up by passkey, a password sign-in
refused, a passkey one accepted, the last passkey kept).

Autofill (mediation "conditional"): headless Chromium shows no suggestion list to click, but
with a virtual authenticator and automatic presence on, it answers a pending conditional request
at once with the authenticator's discoverable credential for the site, as if the user had picked
it; with presence off the request stays pending, and with no such credential it is refused
(NotAllowedError) at once. With only a security key, Chromium says it has no autofill for
passkeys (isConditionalMediationAvailable() false), and the page starts none. The tests use
these: the page signing in on its own proves the request is made, conditional, and followed
through; what they cannot show is Chromium's own suggestion list under the username field (or a
person picking from it)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_harness import OpenContext, screenshot_path
from browser_passkeys import (
    PASSKEY_KEY,
    PLATFORM,
    SECURITY_KEY,
    Authenticators,
    add_passkey,
    assert_accessible,
    expect_signin_page,
    passkey_item,
    passkey_items,
    passkeys_section,
    record_gets,
    register,
    sign_out,
    store_recovery_codes,
    wait_for,
)
from browser_site import Site, running_site
from browser_steps import API, Answers, User, claims, expect_profile, wait_until
from playwright.sync_api import Page, expect
from support import Mailbox

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

STEP_UP_MAX_AGE = 12  # seconds: short (the tests wait it out), with room for a loaded machine


@pytest.fixture(scope="module")
def passkey_site(tmp_path_factory: pytest.TempPathFactory, redis_url: str,
                 sqlite_template: Path, mail_sink: tuple[Mailbox, int]) -> Iterator[Site]:
    """The browser tests' site (passkeys for http://localhost:PORT) with step-up after 30 s."""
    with running_site(tmp_path_factory.mktemp("passkey-site"), redis_url, mail_sink[1],
                      sqlite_template, rotation=False,
                      extra={"AUTH_MFA_STEP_UP_MAX_AGE": str(STEP_UP_MAX_AGE)}) as started:
        yield started


class Statuses:
    """The status of every answer to the page's `method` requests to API + `path`, in order."""

    def __init__(self, page: Page, path: str, method: str = "POST") -> None:
        """`path` is a regular expression (its trailing slash optional)."""
        self.seen: list[int] = []
        pattern = re.compile(re.escape(API) + path + "?$")
        page.on("response", lambda r: self.seen.append(r.status)
                if pattern.search(r.url) and r.request.method == method else None)


def password_step(page: Page, user: User) -> None:
    """The first step of a sign-in, which asks for the second."""
    page.get_by_label("Username or email").fill(user.username)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()


def amr_of(answers: Answers, index: int = -1) -> list[str]:
    status, body = answers.bodies[index]
    assert status == 200, answers.bodies
    amr: list[str] = claims(body["access"])["amr"]
    return amr


@pytest.mark.timeout(120)
def test_a_passkey_made_on_the_profile_signs_in_with_no_username(
        passkey_site: Site, open_context: OpenContext) -> None:
    user = User.fresh()
    context = open_context(passkey_site)
    gets = record_gets(context)
    page = context.new_page()
    devices = Authenticators(context, page)
    laptop = devices.add(PLATFORM)
    register(page, user)
    expect(page.locator("#passkeys-none")).to_be_visible()
    expect(passkey_items(page)).to_have_count(0)

    # Made on the profile: the device keeps a discoverable credential, the account its first
    # factor's recovery codes (shown once).
    add_passkey(page, "Laptop")
    store_recovery_codes(page)
    item = passkey_item(page, "Laptop")
    expect(item).to_contain_text(re.compile(r"Synced\s*Yes"))  # the authenticator's backup flag
    expect(item).to_contain_text(re.compile(r"Last used\s*Never"))
    expect(page.locator("#passkeys-none")).to_be_hidden()
    held = devices.credentials(laptop)
    assert [c["isResidentCredential"] for c in held] == [True], held
    # The same device again: the browser is told to exclude the account's passkeys, refuses,
    # and the page says why.
    section = passkeys_section(page)
    section.get_by_label("Name of the new passkey").fill("Laptop again")
    section.get_by_role("button", name="Add a passkey").click()
    refusal = page.locator("#passkey-add-form [role=alert]")
    expect(refusal).to_contain_text("already holds a passkey")
    expect(passkey_items(page)).to_have_count(1)
    assert len(devices.credentials(laptop)) == 1
    page.screenshot(path=screenshot_path("profile-passkeys-desktop"), full_page=True)
    assert_accessible(page, "profile, with a passkey")

    # Signed out, the sign-in page's autofill request is answered by the device at once (the
    # user picking the passkey): signed in again with no username, by the passkey alone.
    logins = Answers(page, "webauthn/login/")
    before = len(gets.all())
    sign_out(page)
    expect_profile(page, user)
    assert amr_of(logins) == ["webauthn"], logins.bodies
    signin_gets = [g for g in gets.since(before) if g.path == "/auth/signin"]
    assert [(g.mediation, g.outcome) for g in signin_gets] == [("conditional", "resolved")], \
        signin_gets
    expect(passkey_item(page, "Laptop")).not_to_contain_text("Never")  # last used: now

    # With the device waiting for the user, the request stays pending on the username field;
    # the button aborts it and asks the browser's own prompt instead.
    devices.presence(laptop, False)
    before = len(gets.all())
    sign_out(page)
    expect_signin_page(page)
    username = page.get_by_label("Username or email")
    expect(username).to_have_attribute("autocomplete", "username webauthn")
    wait_for(page, lambda: [(g.mediation, g.outcome) for g in gets.since(before)],
             [("conditional", "pending")], "the autofill request")
    page.screenshot(path=screenshot_path("signin-passkeys-desktop"), full_page=True)
    assert_accessible(page, "sign-in, passkey autofill pending")
    devices.presence(laptop, True)
    page.get_by_role("button", name="Use a passkey").click()
    expect_profile(page, user)
    assert [(g.mediation, g.outcome) for g in gets.since(before)] == [
        ("conditional", "AbortError"), (None, "resolved")], gets.since(before)
    assert len(logins.bodies) == 2 and amr_of(logins) == ["webauthn"], logins.bodies


@pytest.mark.timeout(120)
def test_a_security_key_as_the_second_step_after_the_password(
        passkey_site: Site, open_context: OpenContext) -> None:
    user = User.fresh()
    context = open_context(passkey_site)
    gets = record_gets(context)
    page = context.new_page()
    devices = Authenticators(context, page)
    key = devices.add(SECURITY_KEY)
    register(page, user)
    removal = page.locator("#password-removal")
    remove = removal.get_by_role("button", name="Remove password")
    expect(removal).to_contain_text("Add passkeys first")  # the rule, said before it applies
    expect(remove).to_be_hidden()
    add_passkey(page, "Blue key")
    codes = store_recovery_codes(page)
    expect(passkey_item(page, "Blue key")).to_contain_text(re.compile(r"Synced\s*No"))
    # Renamed: a form below the list, the item's own name in its heading.
    passkey_item(page, "Blue key").get_by_role("button", name="Rename").click()
    new_name = page.get_by_label("New name")
    expect(new_name).to_be_focused()
    expect(page.get_by_role("heading", name="Rename “Blue key”")).to_be_visible()
    new_name.fill("")
    page.get_by_role("button", name="Save name").click()
    expect(new_name).to_have_attribute("aria-invalid", "true")
    new_name.fill("Office key")
    page.get_by_role("button", name="Save name").click()
    expect(passkeys_section(page).get_by_role("status")).to_contain_text("renamed “Office key”")
    expect(passkey_item(page, "Office key")).to_be_visible()
    expect(passkey_item(page, "Blue key")).to_have_count(0)
    assert [c["isResidentCredential"] for c in devices.credentials(key)] == [False]
    # One key and unused recovery codes: the password could go now.
    expect(removal).to_contain_text("You can remove your password")
    expect(remove).to_be_visible()

    # With only a security key, Chromium has no passkey autofill to offer
    # (isConditionalMediationAvailable() is false): the page starts none, and says nothing.
    before = len(gets.all())
    sign_out(page)
    expect_signin_page(page)

    # The password, then the key.
    steps = Answers(page, "login/mfa/")
    password_step(page, user)
    use_key = page.locator("#mfa-form").get_by_role("button", name="Use a passkey")
    expect(use_key).to_be_focused()
    expect(page.get_by_label("Authentication code")).to_be_hidden()
    expect(page.get_by_role("button", name="Use a recovery code")).to_be_visible()
    page.screenshot(path=screenshot_path("signin-passkey-step-desktop"), full_page=True)
    assert_accessible(page, "sign-in, second step by passkey")
    expect(page.get_by_role("alert")).to_have_count(0)
    use_key.click()
    expect_profile(page, user)
    assert amr_of(steps) == ["pwd", "webauthn"], steps.bodies
    assert [(g.path, g.mediation, g.outcome) for g in gets.since(before)] == [
        ("/auth/signin", None, "resolved")], gets.since(before)

    # A key that no longer holds the credential: the browser refuses, the page says so, and
    # another way (a recovery code) still finishes the same step.
    devices.clear(key)
    sign_out(page)
    expect_signin_page(page)
    password_step(page, user)
    use_key.click()
    expect(page.get_by_role("alert")).to_contain_text("No passkey was used")
    expect(use_key).to_be_enabled()
    page.get_by_role("button", name="Use a recovery code").click()
    page.get_by_label("Recovery code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    expect_profile(page, user)
    assert amr_of(steps) == ["pwd", "recovery_code"], steps.bodies


@pytest.mark.timeout(150)
def test_a_passwordless_account_signs_in_by_passkey_only_and_keeps_its_last(
        passkey_site: Site, open_context: OpenContext) -> None:
    user = User.fresh()
    context = open_context(passkey_site)
    gets = record_gets(context)
    page = context.new_page()
    devices = Authenticators(context, page)
    laptop = devices.add(PLATFORM)
    register(page, user)
    add_passkey(page, "Laptop")
    store_recovery_codes(page)
    removal = page.locator("#password-removal")
    remove = removal.get_by_role("button", name="Remove password")

    # A second passkey, on a security key with a PIN (the device answers nothing meanwhile:
    # it holds a passkey of this account, which the browser is told to exclude).
    devices.presence(laptop, False)
    key = devices.add(PASSKEY_KEY)
    add_passkey(page, "Yellow key")
    registered = time.time()  # later than the sign-in: waiting from here sees it out
    devices.presence(laptop, True)
    expect(passkey_items(page)).to_have_count(2)
    assert len(devices.credentials(key)) == 1
    expect(removal).to_contain_text("You can remove your password")
    expect(remove).to_be_visible()

    # Removing the password needs a recent sign-in: once the last is older than
    # step_up_max_age, the dialog asks, and a passkey answers it.
    removals = Statuses(page, "password/", "DELETE")
    reauths = Statuses(page, "reauth/")
    wait_until(page, registered + STEP_UP_MAX_AGE + 1.5)
    remove.click()
    removal.get_by_role("button", name="Yes, remove it").click()
    dialog = page.get_by_role("dialog", name="Confirm it's you")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Your password")).to_be_focused()
    page.screenshot(path=screenshot_path("profile-passkey-step-up-desktop"), full_page=True)
    dialog.get_by_role("button", name="Use a passkey").click()
    expect(dialog).to_be_hidden()
    expect(passkeys_section(page).get_by_role("status")).to_contain_text("Your password is removed")
    assert removals.seen == [403, 204], removals.seen
    assert reauths.seen == [200], reauths.seen
    expect(removal).to_contain_text("Your account has no password")
    expect(remove).to_be_hidden()
    expect(page.locator("#password-none")).to_be_visible()
    expect(page.locator("#password-form")).to_be_hidden()

    # Signed out with both devices waiting (autofill pending): the old password is refused
    # as any wrong one is.
    devices.presence(laptop, False)
    devices.presence(key, False)
    sign_out(page)
    expect_signin_page(page)
    with page.expect_response(re.compile(re.escape(API + "login/") + "?$")) as refused:
        page.get_by_label("Username or email").fill(user.username)
        page.get_by_label("Password", exact=True).fill(user.password)
        page.get_by_role("button", name="Sign in").click()
    assert refused.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text(re.compile(r"\S"))
    expect(page).to_have_url(re.compile(r"/auth/signin$"))

    # A passkey signs in: the page's new autofill request, answered by a device.
    logins = Answers(page, "webauthn/login/")
    devices.presence(laptop, True)
    devices.presence(key, True)
    page.reload()
    expect_profile(page, user)
    assert amr_of(logins) == ["webauthn"], logins.bodies

    # Down to one passkey (with recovery codes left) is allowed; the last is kept, saying why.
    passkey_item(page, "Yellow key").get_by_role("button", name="Delete").click()
    section = passkeys_section(page)
    expect(section.locator("#passkey-delete")).to_contain_text("“Yellow key”")
    section.get_by_role("button", name="Yes, delete it").click()
    expect(section.get_by_role("status")).to_contain_text("“Yellow key” is deleted")
    expect(passkey_items(page)).to_have_count(1)
    deletions = Statuses(page, "webauthn/credentials/[^/]+/", "DELETE")
    passkey_item(page, "Laptop").get_by_role("button", name="Delete").click()
    section.get_by_role("button", name="Yes, delete it").click()
    expect(section.locator(":scope > [role=alert]")).to_contain_text("no password")
    assert deletions.seen == [400], deletions.seen
    expect(passkey_items(page)).to_have_count(1)
    page.screenshot(path=screenshot_path("profile-passkeys-last-desktop"), full_page=True)
    assert [g.path for g in gets.all()].count("/auth/signin") >= 2
