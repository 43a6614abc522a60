// A session that ends ends in every tab, once, with the API's reason (or signed_out /
// account_deleted), and tokens are cleared everywhere.
import assert from "node:assert/strict";
import { browser, fakeServer, test, waitFor } from "./support.js";

async function threeTabs(t, server, options) {
  const b = browser(t, server, options);
  const tabs = [await b.tab(), await b.tab(), await b.tab()];
  await tabs[0].login("ada", "right password");
  await waitFor(() => tabs.every((tab) => tab.state.signedIn));
  return { b, tabs };
}

const allSignedOut = (tabs) => waitFor(() => tabs.every((tab) => !tab.state.signedIn));
const endedOnce = (b, reason) =>
  assert.deepEqual(b.ended.sort(), [[0, reason], [1, reason], [2, reason]]);

for (const [label, options] of [["Web Locks", {}], ["no Web Locks", { locks: null }]]) {
  test(`${label}: a refused refresh ends the session in every tab, once`, async (t) => {
    const server = fakeServer();
    server.refreshRefusal = "session_ended";
    const { b, tabs } = await threeTabs(t, server, options);
    server.time.ms += 58_000;
    const attempts = await Promise.allSettled(tabs.flatMap((tab) => [tab.getAccessToken(), tab.getAccessToken()]));
    assert.ok(attempts.every((a) => a.status == "rejected" && a.reason.reason == "session_ended"));
    assert.equal(server.count("token/refresh/"), 1);
    await allSignedOut(tabs);
    await new Promise((r) => setTimeout(r, 30));
    endedOnce(b, "session_ended");
    for (const tab of tabs) assert.equal(await tab.getAccessToken(), null);
  });
}

test("logout in one tab: POST logout/ with the refresh token, every tab signed out", async (t) => {
  const server = fakeServer();
  const { b, tabs } = await threeTabs(t, server);
  await tabs[1].logout();
  const [logout] = server.calls.filter((c) => c.path == "logout/");
  assert.deepEqual(Object.keys(logout.body), ["refresh_token"]);
  assert.match(logout.body.refresh_token, /\./);
  await allSignedOut(tabs);
  await new Promise((r) => setTimeout(r, 30));
  endedOnce(b, "signed_out");
});

test("logout signs out locally even when the server cannot be reached", async (t) => {
  const server = fakeServer();
  const { b, tabs } = await threeTabs(t, server);
  server.answer["logout/"] = () => Promise.reject(new TypeError("offline"));
  await tabs[0].logout();
  await allSignedOut(tabs);
  await new Promise((r) => setTimeout(r, 30));
  endedOnce(b, "signed_out");
});

for (const reason of ["token_reused", "password_changed", "session_ended", "user_inactive"]) {
  test(`a Bearer call refused with ${reason}: no refresh, the session ends everywhere`, async (t) => {
    const server = fakeServer();
    const { b, tabs } = await threeTabs(t, server);
    server.bearerRefusal = reason;
    await assert.rejects(tabs[2].listSessions(), { status: 401, reason });
    assert.equal(server.count("token/refresh/"), 0);
    await allSignedOut(tabs);
    await new Promise((r) => setTimeout(r, 30));
    endedOnce(b, reason);
  });
}

test("the app's fetch() refused with token_reused ends the session too", async (t) => {
  const server = fakeServer();
  server.answer["/api/orders"] = () => new Response(JSON.stringify(
    { detail: "Token is invalid", code: "token_not_valid", reason: "token_reused" }), { status: 401 });
  const { b, tabs } = await threeTabs(t, server);
  const res = await tabs[0].fetch("http://app.test/api/orders");
  assert.equal(res.status, 401);
  await allSignedOut(tabs);
  await new Promise((r) => setTimeout(r, 30));
  endedOnce(b, "token_reused");
});

test("account deletion: DELETE profile/ with the password, then account_deleted everywhere", async (t) => {
  const server = fakeServer();
  const { b, tabs } = await threeTabs(t, server);
  await tabs[0].deleteAccount("right password");
  const call = server.calls.find((c) => c.path == "profile/" && c.method == "DELETE");
  assert.deepEqual(call.body, { password: "right password" });
  await allSignedOut(tabs);
  await new Promise((r) => setTimeout(r, 30));
  endedOnce(b, "account_deleted");
});

test("logout-all: every tab signed out", async (t) => {
  const server = fakeServer();
  const { b, tabs } = await threeTabs(t, server);
  await tabs[0].logoutAll();
  assert.equal(server.count("logout-all/"), 1);
  await allSignedOut(tabs);
  await new Promise((r) => setTimeout(r, 30));
  endedOnce(b, "signed_out");
});

test("the proactive timer refreshes before exp with no call from the app", { timeout: 10_000 }, async (t) => {
  // Real time here: a 4 s token, refreshed a quarter of its life (1 s) before exp.
  const time = { ms: Date.now(), now: () => Date.now(), seconds: () => Math.floor(Date.now() / 1000) };
  const server = fakeServer({ time, accessTtl: 4 });
  const b = browser(t, server);
  const tabs = [await b.tab(), await b.tab()];
  await tabs[0].login("ada", "right password");
  await waitFor(() => server.count("token/refresh/") == 1, 5000);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.count("token/refresh/"), 1, "two tabs' timers, one refresh");
  assert.equal(await tabs[1].getAccessToken(), await tabs[0].getAccessToken());
});

test("an onSessionEnd or subscriber that throws does not stop the session from ending", async (t) => {
  const reported = [];
  const original = globalThis.reportError;
  globalThis.reportError = (e) => reported.push(e.message);
  t.after(() => (globalThis.reportError = original));
  const server = fakeServer();
  const tab = await browser(t, server, { onSessionEnd: () => { throw new Error("app bug 1"); } }).tab();
  tab.subscribe(() => { throw new Error("app bug 2"); });
  await tab.login("ada", "right password");
  await tab.logout();
  assert.equal(tab.state.signedIn, false);
  assert.equal(await tab.getAccessToken(), null);
  assert.deepEqual(reported, ["app bug 2", "app bug 2", "app bug 1"]);
});
