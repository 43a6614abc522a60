"""Issue 11, second review (branch attack2): multi-tab races of the hosted pages and the client
in Chromium, against the real serve + worker of the browser tests."""

from __future__ import annotations

import json
import time

import pytest
from browser_harness import OpenContext
from browser_site import ACCESS_TTL, Site
from browser_steps import (
    API,
    REFRESH_PATH,
    RefreshWatch,
    Tab,
    User,
    claims,
    expect_profile,
    register_by_api,
    save_display_name,
    sign_in,
    wait_until,
)
from playwright.sync_api import Route, expect

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def storage_key(site: Site) -> str:
    """The client's sessionStorage key on the hosted pages (its channel name)."""
    return "authsvc:" + site.url + API


@pytest.mark.timeout(60)
def test_a_restored_tab_with_a_rotated_out_pair_takes_the_open_tabs_newer_one(
        rotation_site: Site, open_context: OpenContext) -> None:
    """A tab brought back with its old sessionStorage (Ctrl+Shift+T, a discarded tab revisited,
    Duplicate of a tab frozen in the background) holds a pair another tab has since rotated.
    The open tab answers its hello with the newer pair: the restored tab must wait for that
    before refreshing, else its refresh presents the replaced token, which past the grace is
    theft: every tab signed out with token_reused, and a theft alert mailed."""
    user = User.fresh()
    register_by_api(rotation_site, user)
    context = open_context(rotation_site)
    watch = RefreshWatch(context)
    first = Tab(context.new_page())
    login = sign_in(first.page, user)
    key = storage_key(rotation_site)
    stale = first.page.evaluate("(key) => sessionStorage.getItem(key)", key)
    assert json.loads(stale)["refresh"] == login["refresh"]

    expires = claims(login["access"])["exp"]
    wait_until(first.page, expires + 1.5)  # the first tab rotated, and the grace is over
    assert watch.seen and watch.seen[0].request.post_data_json == {"refresh": login["refresh"]}
    rotated_at = time.time()

    restored = Tab(context.new_page())
    restored.page.add_init_script(
        f"if (!sessionStorage.getItem({json.dumps(key)})) "
        f"sessionStorage.setItem({json.dumps(key)}, {json.dumps(stale)});")
    # The open tab is busy for a moment (an app's own work), as tabs are: its answer to the
    # restored tab's hello comes a little later than the restored tab's own work would.
    first.page.evaluate("""() => setTimeout(() => {
        const until = Date.now() + 100; while (Date.now() < until);
    }, 0)""")
    restored.page.goto("/auth/profile")
    expect_profile(restored.page, user)
    restored.page.wait_for_timeout(1500)
    replayed = [s for s in watch.between(rotated_at, time.time())
                if s.request.post_data_json == {"refresh": login["refresh"]}]
    assert not replayed, "the restored tab refreshed with the rotated-out token"
    save_display_name(first.page, "Still Signed In")
    save_display_name(restored.page, "Restored Too")


@pytest.mark.timeout(60)
def test_a_rotation_whose_answer_was_lost_keeps_the_session(
        rotation_site: Site, open_context: OpenContext) -> None:
    """The server rotates, and the answer never reaches the tab (a network drop, a proxy's
    502 after the upstream answered). The tab asks again while the server's rotation grace
    still gives the same successor; waiting for the next call presented the replaced token
    past the grace: the session ended as token_reused, and a theft alert was mailed."""
    user = User.fresh()
    register_by_api(rotation_site, user)
    context = open_context(rotation_site)
    lost: list[str] = []

    def lose_the_first_answer(route: Route) -> None:
        if lost:
            route.continue_()
            return
        answer = route.fetch()  # the server has rotated
        lost.append(answer.text())
        route.abort("connectionreset")

    context.route(REFRESH_PATH, lose_the_first_answer)
    tab = Tab(context.new_page())
    login = sign_in(tab.page, user)
    expires = claims(login["access"])["exp"]
    wait_until(tab.page, expires + 0.5)
    assert lost and "refresh" in json.loads(lost[0]), lost
    wait_until(tab.page, expires + ACCESS_TTL + 0.5)  # past the next pair's exp too
    save_display_name(tab.page, "Still Signed In")
    expect_profile(tab.page, user)
    log = open_context.console(context)  # the lost answer, printed by Chromium, is the test's
    log.errors[:] = [e for e in log.errors if "ERR_CONNECTION_RESET" not in e]


@pytest.mark.timeout(60)
def test_another_tabs_request_while_the_password_change_is_answered_keeps_both_tabs(
        rotation_site: Site, open_context: OpenContext) -> None:
    """The server changes the password (the old password's tokens are refused from then on)
    and its answer, the changing tab's new pair, is on its way while the other tab saves its
    display name. That tab's 401 password_changed signed both tabs out; it must wait for the
    pair instead."""
    user = User.fresh()
    register_by_api(rotation_site, user)
    context = open_context(rotation_site)
    changer = Tab(context.new_page())
    sign_in(changer.page, user)
    other = Tab(context.new_page())
    other.page.goto("/auth/profile")
    expect_profile(other.page, user)

    def answer_late(route: Route) -> None:
        answer = route.fetch()  # changed on the server
        time.sleep(0.7)  # the answer on the wire
        route.fulfill(response=answer)

    changer.page.route("**/api/v1/auth/password/change/", answer_late)
    other.page.get_by_label("Display name").fill("Saved Meanwhile")
    # The other tab's click lands while the change's answer is held.
    other.page.evaluate("""() => setTimeout(() => document.querySelector(
        "#display-name-form button[type=submit]").click(), 300)""")
    changer.page.get_by_label("Current password").fill(user.password)
    new_password = user.password + " changed"
    changer.page.get_by_label("New password", exact=True).fill(new_password)
    changer.page.get_by_label("Repeat new password").fill(new_password)
    changer.page.get_by_role("button", name="Change password").click()
    expect(changer.page.locator("#password-form [role=status]")).to_contain_text(
        "Your password is changed")
    form = other.page.locator("#display-name-form")
    expect(form.get_by_role("status")).to_have_text("Saved.")
    expect_profile(other.page, user)
    save_display_name(changer.page, "Still Here")
