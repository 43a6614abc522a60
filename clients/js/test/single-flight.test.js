// One refresh in flight per browser: N tabs x M concurrent callers make exactly one
// POST token/refresh/, with Web Locks and with the BroadcastChannel fallback.
import assert from "node:assert/strict";
import { browser, clock, fakeServer, test, waitFor } from "./support.js";

const TABS = 4;
const CALLS = 5;

async function signedInTabs(t, server, options) {
  const b = browser(t, server, options);
  const first = await b.tab();
  await first.login("ada", "right password");
  const tabs = [first];
  while (tabs.length < TABS) tabs.push(await b.tab());
  for (const tab of tabs) assert.equal(tab.state.signedIn, true, "every tab has the session");
  return { b, tabs };
}

for (const [label, options] of [["Web Locks", {}], ["no Web Locks (fallback)", { locks: null }]]) {
  test(`${label}: ${TABS} tabs x ${CALLS} calls inside the margin make one refresh`,
    { timeout: 10_000 }, async (t) => {
      const server = fakeServer();
      const { b, tabs } = await signedInTabs(t, server, options);
      const old = await tabs[0].getAccessToken();
      server.time.ms += 50_000; // 60 s tokens: refresh in the last quarter, 15 s

      const results = await Promise.all(tabs.flatMap((tab) => [
        ...Array.from({ length: CALLS }, () => tab.getAccessToken()),
        tab.fetch("http://app.test/api/things").then((r) => r.status),
      ]));

      assert.equal(server.count("token/refresh/"), 1);
      const tokens = new Set(results.filter((r) => typeof r == "string"));
      assert.equal(tokens.size, 1, "every caller got the same token");
      assert.notEqual([...tokens][0], old);
      for (const tab of tabs) assert.equal(await tab.getAccessToken(), [...tokens][0]);
      const appCalls = server.calls.filter((c) => c.path == "/api/things");
      assert.equal(appCalls.length, TABS);
      for (const c of appCalls) assert.equal(c.auth, "Bearer " + [...tokens][0]);
      if (b.locks) assert.ok(b.locks.granted >= 1);
      assert.deepEqual(b.ended, []);
    });

  test(`${label}: ${TABS} tabs x ${CALLS} requests refused with token_expired make one refresh`,
    { timeout: 10_000 }, async (t) => {
      // The server's clock runs past exp while the tabs' does not (clock skew): only the
      // server's 401 token_expired says the token must be refreshed.
      const server = fakeServer();
      const tabsClock = clock(server.time.ms);
      const { tabs } = await signedInTabs(t, server, { ...options, now: tabsClock.now });
      server.time.ms += 61_000;
      const answers = await Promise.all(tabs.flatMap((tab) =>
        Array.from({ length: CALLS }, () => tab.getProfile())));
      assert.equal(server.count("token/refresh/"), 1);
      assert.ok(answers.every((p) => p.username == "ada"));
      assert.equal(server.count("profile/", "GET"), 2 * TABS * CALLS, "each call retried once");
    });
}

test("within one tab with no other tab, concurrent callers share one refresh", async (t) => {
  const server = fakeServer();
  const tab = await browser(t, server).tab();
  await tab.login("ada", "right password");
  server.time.ms += 55_000;
  const results = await Promise.all(Array.from({ length: 8 }, () => tab.getAccessToken()));
  assert.equal(server.count("token/refresh/"), 1);
  assert.equal(new Set(results).size, 1);
});

test("outside the margin no refresh is made", async (t) => {
  const server = fakeServer();
  const tab = await browser(t, server).tab();
  await tab.login("ada", "right password");
  server.time.ms += 40_000; // 20 s left, the margin is 15 s
  await Promise.all([tab.getAccessToken(), tab.getProfile()]);
  assert.equal(server.count("token/refresh/"), 0);
});

test("a 401 token_expired refreshes once and retries once, with the new token", async (t) => {
  const server = fakeServer();
  const tabsClock = clock(server.time.ms);
  const tab = await browser(t, server, { now: tabsClock.now }).tab();
  await tab.login("ada", "right password");
  server.time.ms += 61_000;
  const profile = await tab.getProfile();
  assert.equal(profile.username, "ada");
  assert.equal(server.count("token/refresh/"), 1);
  const [first, retry, ...more] = server.calls.filter((c) => c.path == "profile/");
  assert.deepEqual(more, []);
  assert.notEqual(first.auth, retry.auth, "the retry carries the new token");
  assert.equal(retry.auth, "Bearer " + (await tab.getAccessToken()));
});

test("no refresh loop when the retry is refused as expired too", async (t) => {
  const server = fakeServer();
  const b = browser(t, server);
  const tab = await b.tab();
  const other = await b.tab();
  await tab.login("ada", "right password");
  server.answer["profile/"] = () => new Response(
    JSON.stringify({ detail: "expired", code: "token_not_valid", reason: "token_expired" }), { status: 401 });
  await assert.rejects(tab.getProfile(), { name: "AuthError", status: 401, reason: "token_expired" });
  assert.equal(server.count("token/refresh/"), 1);
  assert.equal(server.count("profile/", "GET"), 2);
  assert.equal(tab.state.signedIn, false);
  await waitFor(() => !other.state.signedIn);
  assert.deepEqual(b.ended.sort(), [[0, "token_expired"], [1, "token_expired"]]);
});
