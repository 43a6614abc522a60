"""The frontend flow in a real browser (issue 11), on the hosted pages and the JS client, against
a real serve + worker + SMTP sink with six-second access tokens: register, edit the profile,
outlive an access token, two tabs sharing one refresh, rotation and reuse detection, logout
across tabs, a password reset by mail, "this wasn't me" from an alert mail, revoking another
browser's session, account deletion."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from browser_harness import OpenContext
from browser_site import Site, link_in, wait_for_mail
from browser_steps import (
    API,
    Answers,
    RefreshWatch,
    Tab,
    User,
    claims,
    expect_profile,
    open_tab,
    register_by_api,
    save_display_name,
    sign_in,
    wait_until,
)
from playwright.sync_api import BrowserContext, expect
from support import Mailbox

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


@pytest.mark.timeout(60)
def test_register_edit_the_profile_and_outlive_the_access_token(
        site: Site, open_context: OpenContext) -> None:
    context = open_context(site)
    watch = RefreshWatch(context)
    page = context.new_page()
    user = User.fresh()
    page.goto("/auth/signup")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Display name").fill(user.display_name)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_label("Repeat password").fill(user.password)
    registered = Answers(page, "register/")
    page.get_by_role("button", name="Create account").click()
    expect_profile(page, user)
    expect(page.get_by_label("Display name")).to_have_value(user.display_name)

    save_display_name(page, "Renamed Tester")
    page.reload()  # the name comes back from the server, not from the form
    expect(page.get_by_label("Display name")).to_have_value("Renamed Tester")

    expires = claims(registered.only(201)["access"])["exp"]
    wait_until(page, expires + 0.5)
    with page.expect_request(lambda r: r.method == "PATCH" and "/profile/" in r.url) as patch:
        save_display_name(page, "After Expiry")
    expect_profile(page, user)
    assert watch.seen, "no token/refresh/ request: the first access token was used past its exp"
    sent = patch.value.headers["authorization"].removeprefix("Bearer ")
    assert claims(sent)["exp"] > expires, "the request after exp carried the expired token"


@dataclass
class TwoTabs:
    """Two tabs of one browser, signed in, past the first access token's expiry."""

    user: User
    context: BrowserContext
    watch: RefreshWatch
    first: Tab
    second: Tab
    login: dict[str, Any]
    expires: float      # the first access token's exp
    refreshed: Any      # the one token/refresh/ request made for both tabs


def two_tabs_past_one_expiry(site: Site, open_context: OpenContext) -> TwoTabs:
    """Sign in in one tab, open a second (signed in by the first), and count the refreshes
    over the access token's life: both tabs hold the same token, so both schedule its refresh
    for the same moment, and exactly one request must go out."""
    user = User.fresh()
    register_by_api(site, user)
    context = open_context(site)
    watch = RefreshWatch(context)
    first = Tab(context.new_page())
    started = time.time()
    login = sign_in(first.page, user)
    second = open_tab(context, "/auth/profile")
    expect_profile(second.page, user)
    expires = claims(login["access"])["exp"]
    wait_until(first.page, expires + 0.5)
    cycle = watch.between(started, expires + 0.5)
    rotation = "on" if site.rotation else "off"
    print(f"refresh requests over one access-token lifetime, two tabs, rotation {rotation}: "
          f"{len(cycle)}")
    assert len(cycle) == 1, [s.request.url for s in cycle]
    answer = cycle[0].request.response()
    assert answer is not None and answer.status == 200
    return TwoTabs(user, context, watch, first, second, login, expires, cycle[0])


@pytest.mark.timeout(60)
def test_two_tabs_make_one_refresh_and_both_stay_signed_in(
        site: Site, open_context: OpenContext) -> None:
    tabs = two_tabs_past_one_expiry(site, open_context)
    user, first, second = tabs.user, tabs.first, tabs.second
    for tab, name in ((first, "First Tab"), (second, "Second Tab")):
        save_display_name(tab.page, name)
        expect_profile(tab.page, user)


@pytest.mark.timeout(75)
def test_with_rotation_one_refresh_reaches_every_tab_and_reuse_ends_them_all(
        rotation_site: Site, open_context: OpenContext) -> None:
    tabs = two_tabs_past_one_expiry(rotation_site, open_context)
    user, context, watch, login, expires = (tabs.user, tabs.context, tabs.watch, tabs.login,
                                            tabs.expires)
    first, second = tabs.first, tabs.second
    answer = tabs.refreshed.request.response()
    rotated = answer.json()
    assert rotated["refresh"] != login["refresh"], "rotation on, but the same refresh token"

    # The tab that did not refresh must hold the rotated token: close the one that did, and
    # the next refresh comes from the other tab (or a new one it told).
    refresher = tabs.refreshed.request.frame.page
    survivor = second if refresher == first.page else first
    refresher.close()
    newcomer = open_tab(context, "/auth/profile")
    expect_profile(newcomer.page, user)
    next_expires = claims(rotated["access"])["exp"]
    wait_until(survivor.page, next_expires + 0.5)
    following = watch.between(expires + 0.5, next_expires + 0.5)
    assert len(following) == 1, [s.request.url for s in following]
    assert following[0].request.post_data_json == {"refresh": rotated["refresh"]}
    renewed = following[0].request.response()
    assert renewed is not None and renewed.status == 200, renewed and renewed.text()
    newest = renewed.json()  # now: a tab that navigates later takes the body with it
    for tab in (survivor, newcomer):
        save_display_name(tab.page, "Still Here")

    # Someone else replays the first refresh token (long past the grace): the session ends.
    thief = open_context(rotation_site).new_page()
    thief.goto("/auth/signin")
    replay = thief.evaluate("""async (refresh) => {
        const answer = await fetch("/api/v1/auth/token/refresh/", {method: "POST",
            headers: {"Content-Type": "application/json"}, body: JSON.stringify({refresh})});
        return {status: answer.status, body: await answer.json()};
    }""", login["refresh"])
    assert replay["status"] == 401, replay
    assert replay["body"]["reason"] == "token_reused", replay

    # Every token of the session is refused now, the newer ones too, saying why: the refresh
    # token seen above always (as reused, or, if the tabs rotated it again meanwhile, as
    # revoked), its access token while it has not expired by itself (a loaded machine may
    # take longer than the access lifetime to get here).
    refused = httpx.post(rotation_site.url + API + "token/refresh/",
                         json={"refresh": newest["refresh"]})
    assert refused.status_code == 401, refused.text
    assert refused.json()["reason"] in ("token_reused", "token_revoked"), refused.text
    if time.time() + 1 < claims(newest["access"])["exp"]:
        by_access = httpx.get(rotation_site.url + API + "profile/",
                              headers={"Authorization": f"Bearer {newest['access']}"})
        assert by_access.status_code == 401, by_access.text
        assert by_access.json()["reason"] == "token_reused", by_access.text
    # ...so each tab ends at its next request: a click, or its refresh before exp at the latest.
    survivor.click_unless_gone("Save")
    survivor.expect_signed_out("token_reused")
    newcomer.expect_signed_out("token_reused")


@pytest.mark.timeout(45)
def test_signing_out_in_one_tab_signs_out_the_others(
        site: Site, open_context: OpenContext) -> None:
    user = User.fresh()
    register_by_api(site, user)
    context = open_context(site)
    first = Tab(context.new_page())
    login = sign_in(first.page, user)
    second = open_tab(context, "/auth/profile")
    expect_profile(second.page, user)

    first.page.get_by_role("button", name="Sign out", exact=True).click()
    first.expect_signed_out("signed_out")
    second.expect_signed_out("signed_out")
    refused = httpx.post(site.url + API + "token/refresh/", json={"refresh": login["refresh"]})
    assert refused.status_code == 401, refused.text


@pytest.mark.timeout(60)
def test_forgotten_password_reset_from_the_mailed_link(
        site: Site, open_context: OpenContext, mail_sink: tuple[Mailbox, int]) -> None:
    user = User.fresh()
    register_by_api(site, user)
    page = open_context(site).new_page()
    page.goto("/auth/signin")
    page.get_by_role("link", name="Forgot password?").click()
    expect(page).to_have_url(re.compile(r"/auth/forgot$"))
    page.get_by_label("Email").fill(user.email)
    page.get_by_role("button", name="Send reset link").click()
    expect(page.get_by_role("status")).to_contain_text("on its way")

    link = link_in(wait_for_mail(mail_sink[0], user.email, "Reset your password"))
    assert link.startswith(site.url + "/auth/reset#token="), link
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/auth/reset$"))  # the token left the address bar
    new_password = user.password + " renewed"
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("Repeat new password").fill(new_password)
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_role("status")).to_contain_text("new password is set")
    page.get_by_role("link", name="Sign in").click()

    sign_in(page, user, new_password)
    old = httpx.post(site.url + API + "login/",
                     json={"username_or_email": user.username, "password": user.password})
    assert old.status_code == 401, old.text


@pytest.mark.timeout(45)
def test_this_wasnt_me_from_the_alert_mail_ends_every_session(
        site: Site, open_context: OpenContext, mail_sink: tuple[Mailbox, int]) -> None:
    user = User.fresh()
    register_by_api(site, user)
    intruder = Tab(open_context(site).new_page())
    sign_in(intruder.page, user)  # a device the account has not used: an alert is mailed

    link = link_in(wait_for_mail(mail_sink[0], user.email, "New sign-in"))
    assert link.startswith(site.url + "/auth/not-me#token="), link
    owner = open_context(site).new_page()
    owner.goto(link)
    expect(owner).to_have_url(re.compile(r"/auth/not-me$"))  # the token left the address bar
    owner.get_by_role("button", name="End every session").click()
    expect(owner.get_by_role("status")).to_contain_text("Every session of your account has ended")

    intruder.click_unless_gone("Save")
    intruder.expect_signed_out("session_ended")
    assert link_in(wait_for_mail(mail_sink[0], user.email, "Reset your password"))


@pytest.mark.timeout(45)
def test_revoking_another_session_signs_that_browser_out(
        site: Site, open_context: OpenContext) -> None:
    user = User.fresh()
    register_by_api(site, user)
    here = Tab(open_context(site).new_page())
    there = Tab(open_context(site).new_page())
    sign_in(here.page, user)
    theirs = sign_in(there.page, user)

    here.page.get_by_role("link", name="Sessions").click()
    sessions = here.page.locator("#session-list > li")
    expect(sessions).to_have_count(2)
    expect(here.page.get_by_text("This device")).to_have_count(1)
    revoke = here.page.get_by_role("button", name="Revoke")
    expect(revoke).to_have_count(1)
    revoke.click()
    expect(here.page.get_by_role("status")).to_contain_text("revoked")
    expect(sessions).to_have_count(1)

    refused = httpx.get(site.url + API + "profile/",
                        headers={"Authorization": f"Bearer {theirs['access']}"})
    assert refused.status_code == 401 and refused.json()["reason"] == "session_ended", refused.text
    there.click_unless_gone("Save")  # that browser's next request (or its refresh before exp)
    there.expect_signed_out("session_ended")
    here.page.reload()  # this one is untouched
    expect(sessions).to_have_count(1)
    expect(here.page.get_by_text("This device")).to_be_visible()


@pytest.mark.timeout(45)
def test_deleting_the_account(site: Site, open_context: OpenContext) -> None:
    user = User.fresh()
    register_by_api(site, user)
    tab = Tab(open_context(site).new_page())
    sign_in(tab.page, user)
    page = tab.page
    page.get_by_label("Password to delete the account").fill(user.password)
    page.get_by_role("button", name="Delete account").click()
    confirm = page.get_by_label("I understand this cannot be undone")
    expect(confirm).to_have_attribute("aria-invalid", "true")  # not deleted without the tick
    confirm.check()
    page.get_by_role("button", name="Delete account").click()
    tab.expect_signed_out("account_deleted")

    page.get_by_label("Username or email").fill(user.username)
    page.get_by_label("Password", exact=True).fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    gone = httpx.post(site.url + API + "login/",
                      json={"username_or_email": user.username, "password": user.password})
    assert gone.status_code == 401, gone.text
