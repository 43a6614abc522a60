"""Issue 11, second review (branch attack2): multi-tab races of the hosted pages and the client
in Chromium, against the real serve + worker of the browser tests."""

from __future__ import annotations

import json
import time

import pytest
from browser_harness import OpenContext
from browser_site import Site
from browser_steps import (
    API,
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
