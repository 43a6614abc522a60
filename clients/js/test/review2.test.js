// Found in the second review (branch attack2).
import assert from "node:assert/strict";
import { browser, fakeServer, sleep, test, waitFor } from "./support.js";

test("a sign-in in a tab opened after a sign-out reaches a tab that had refreshed before",
  async (t) => {
    const server = fakeServer({ refreshDelay: 0 });
    const b = browser(t, server);
    const old = await b.tab();
    await old.login("ada", "right password");
    await old.refresh();
    await old.refresh(); // this tab has seen three pairs
    await old.logout();
    const fresh = await b.tab(); // nobody is signed in: it has seen none
    await fresh.login("ada", "right password");
    await waitFor(() => old.state.signedIn, 500).catch(() => {});
    assert.equal(old.state.signedIn, true, "the older tab never heard of the new sign-in");
    assert.equal(await old.getAccessToken(), await fresh.getAccessToken());
  });
