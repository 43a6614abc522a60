"""What the passkey browser tests share: Chromium's virtual authenticators (the DevTools
protocol's WebAuthn domain, per tab), a record of every navigator.credentials.get() the pages
make (its mediation and how it ended), and the profile's passkey steps by label and role."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from browser_a11y import positive_tabindex, tab_order, tabbable_in_dom_order, unlabelled_inputs
from browser_steps import User, expect_profile
from playwright.sync_api import BrowserContext, Locator, Page, expect

# A platform authenticator (the device's own, with a screen lock): discoverable credentials,
# user verification, and a "backed up" (synced) flag as a password manager's passkey has.
PLATFORM = {"protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
            "hasUserVerification": True, "isUserVerified": True,
            "automaticPresenceSimulation": True,
            "defaultBackupEligibility": True, "defaultBackupState": True}
# A plain security key: no discoverable credentials, no PIN; a touch (simulated) is all.
SECURITY_KEY = {"protocol": "ctap2", "transport": "usb", "hasResidentKey": False,
                "hasUserVerification": False, "automaticPresenceSimulation": True}
# A security key with a PIN that keeps discoverable credentials: a passkey of its own.
PASSKEY_KEY = {"protocol": "ctap2", "transport": "usb", "hasResidentKey": True,
               "hasUserVerification": True, "isUserVerified": True,
               "automaticPresenceSimulation": True}

# Every navigator.credentials.get() a page of the context makes, reported to the test as it
# starts and as it ends. It only watches: the call itself is the browser's.
RECORD_GETS = """(() => {
  const container = navigator.credentials;
  if (!container) return;
  const get = container.get.bind(container);
  // (a report from a page on its way out may find the test's end gone: that is no error)
  const report = (event) => Promise.resolve(window.__webauthnRecord?.(event)).catch(() => {});
  let serial = 0;
  container.get = (options) => {
    const id = `${Date.now()}-${++serial}`;
    report({ id, event: "start", mediation: options?.mediation ?? null, path: location.pathname });
    const answer = get(options);
    answer.then(() => report({ id, event: "resolved" }),
                (error) => report({ id, event: "rejected", error: error.name }));
    return answer;
  };
})();"""


@dataclass
class Get:
    """One navigator.credentials.get(): where, with which mediation, and how it ended."""

    mediation: str | None
    path: str
    outcome: str = "pending"  # "resolved" or the DOMException's name


@dataclass
class Gets:
    """The record of a context's navigator.credentials.get() calls, in order."""

    calls: dict[str, Get] = field(default_factory=dict)

    def record(self, _source: Any, event: dict[str, Any]) -> None:
        if event["event"] == "start":
            self.calls[event["id"]] = Get(event["mediation"], event["path"])
        elif event["id"] in self.calls:
            self.calls[event["id"]].outcome = (
                "resolved" if event["event"] == "resolved" else event["error"])

    def all(self) -> list[Get]:
        return list(self.calls.values())

    def since(self, count: int) -> list[Get]:
        return self.all()[count:]


def record_gets(context: BrowserContext) -> Gets:
    gets = Gets()
    context.expose_binding("__webauthnRecord", gets.record)
    context.add_init_script(RECORD_GETS)
    return gets


class Authenticators:
    """The virtual authenticators of one tab (Chromium keeps them per tab, across its
    navigations): what a user's device and security keys are to the page."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.cdp = context.new_cdp_session(page)
        self.cdp.send("WebAuthn.enable")

    def add(self, options: dict[str, Any]) -> str:
        made: dict[str, str] = self.cdp.send("WebAuthn.addVirtualAuthenticator",
                                             {"options": options})
        return made["authenticatorId"]

    def presence(self, authenticator: str, on: bool) -> None:
        """Whether the authenticator answers by itself (the user touching it or unlocking the
        device). Off, a request waits, as it does for a user who has not chosen yet."""
        self.cdp.send("WebAuthn.setAutomaticPresenceSimulation",
                      {"authenticatorId": authenticator, "enabled": on})

    def credentials(self, authenticator: str) -> list[dict[str, Any]]:
        held: list[dict[str, Any]] = self.cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
        return held

    def clear(self, authenticator: str) -> None:
        self.cdp.send("WebAuthn.clearCredentials", {"authenticatorId": authenticator})


def wait_for(page: Page, value: Callable[[], Any], expected: Any, what: str,
             seconds: float = 10) -> None:
    """Polls until `value()` is `expected`, in Playwright's waits (the sync API hands over the
    browser's events, the recorded calls among them, only while in a call)."""
    deadline = time.monotonic() + seconds
    while (seen := value()) != expected:
        assert time.monotonic() < deadline, f"{what}: {seen!r}, not {expected!r}"
        page.wait_for_timeout(50)


def assert_accessible(page: Page, name: str) -> None:
    """Every input labelled, no positive tabindex, Tab through what is shown in DOM order."""
    page.evaluate("() => window.scrollTo(0, 0)")
    page.mouse.click(1, 1)
    assert unlabelled_inputs(page) == [], f"{name}: inputs without a label"
    assert positive_tabindex(page) == [], f"{name}: a positive tabindex breaks the order"
    expected = tabbable_in_dom_order(page)
    assert tab_order(page, len(expected)) == expected, f"{name}: Tab order"


def register(page: Page, user: User) -> None:
    """An account made on the sign-up page, which lands on the profile, signed in."""
    page.goto("/auth/signup")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_label("Repeat password").fill(user.password)
    page.get_by_role("button", name="Create account").click()
    expect_profile(page, user)


def passkeys_section(page: Page) -> Locator:
    return page.locator("#passkeys-section")


def passkey_items(page: Page) -> Locator:
    return page.locator("#passkey-list > li")


def passkey_item(page: Page, name: str) -> Locator:
    return passkey_items(page).filter(has=page.get_by_text(name, exact=True))


def add_passkey(page: Page, name: str) -> None:
    """Adds a passkey from the profile (the tab's authenticators make it) and sees it listed."""
    section = passkeys_section(page)
    section.get_by_label("Name of the new passkey").fill(name)
    section.get_by_role("button", name="Add a passkey").click()
    expect(section.get_by_role("status")).to_contain_text(f"“{name}” is added")
    expect(passkey_item(page, name)).to_be_visible()


def store_recovery_codes(page: Page) -> list[str]:
    """The recovery codes the account's first factor answered: shown once, then gone."""
    shown = page.locator("#passkey-recovery-codes li")
    expect(shown).to_have_count(10)
    codes = shown.all_inner_texts()
    passkeys_section(page).get_by_role("button", name="I have stored them").click()
    expect(shown).to_have_count(0)
    return codes


def sign_out(page: Page) -> None:
    """Signs out from the nav; the sign-in page may sign straight back in (autofill answered by
    a virtual authenticator), so only the sign-out request is waited for."""
    with page.expect_response(re.compile(r"/api/v1/auth/logout/?$")):
        page.get_by_role("button", name="Sign out", exact=True).click()


def expect_signin_page(page: Page) -> None:
    expect(page).to_have_url(re.compile(r"/auth/signin(#.*)?$"))
    expect(page.get_by_label("Username or email")).to_be_visible()
