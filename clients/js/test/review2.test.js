// Found in the second review (branch attack2).
import assert from "node:assert/strict";
import { browser, fakeServer, jwt, sleep, test, waitFor } from "./support.js";

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

// The server's password change: the same session goes on with a new pair.
function changeKeepsTheSession(server) {
  server.answer["password/change/"] = (call) => {
    const sid = JSON.parse(Buffer.from(call.auth.split(".")[1], "base64url")).sid;
    server.changed = { access: server.issue(sid), refresh: jwt({ token_type: "refresh", sid }) };
    return new Response(JSON.stringify(server.changed), { status: 200 });
  };
}

// The server has changed the password (every token of the old version is refused with
// password_changed) and its answer, the tab's new pair, is still on the wire.
function passwordChangeOnTheWire(server) {
  changeKeepsTheSession(server);
  const stale = new Set();
  const refuse = () => new Response(JSON.stringify({ detail: "Token is invalid",
    code: "token_not_valid", reason: "password_changed" }), { status: 401 });
  const fetch = async (input, init = {}) => {
    const request = new Request(input, init);
    const path = new URL(request.url).pathname;
    const body = init.body ? JSON.parse(init.body) : {};
    const access = (request.headers.get("Authorization") || "").replace("Bearer ", "");
    if (stale.has(access) || stale.has(body.refresh)) return refuse();
    const answer = await server.fetch(input, init);
    if (path.endsWith("password/change/")) {
      for (const call of server.calls) {
        if (call.auth) stale.add(call.auth.replace("Bearer ", ""));
      }
      if (fetch.refresh) stale.add(fetch.refresh);
      await sleep(150);
    }
    return answer;
  };
  return fetch;
}

test("another tab's request refused as password_changed while this tab's own change is " +
  "answered does not sign either tab out", async (t) => {
  const server = fakeServer({ refreshDelay: 0 });
  const fetch = passwordChangeOnTheWire(server);
  const b = browser(t, server, { fetch });
  const [changer, other] = [await b.tab(), await b.tab()];
  await changer.login("ada", "right password");
  await waitFor(() => other.state.signedIn);
  const changing = changer.changePassword("right password", "new password");
  await waitFor(() => server.count("password/change/") == 1);
  await sleep(20);
  const seen = await other.getProfile().then((p) => p.username, (e) => e.reason);
  await changing;
  await sleep(50);
  assert.deepEqual(b.ended, [], "a session end was announced");
  assert.equal(changer.state.signedIn, true);
  assert.equal(other.state.signedIn, true);
  assert.equal(seen, "ada");
});

test("this tab's own refresh refused as password_changed while its change is answered does " +
  "not sign it out", async (t) => {
  const server = fakeServer({ refreshDelay: 0 });
  const fetch = passwordChangeOnTheWire(server);
  const b = browser(t, server, { fetch });
  const tab = await b.tab({ storage: { get: () => null, set: (p) => p && (fetch.refresh = p.refresh) } });
  await tab.login("ada", "right password");
  const changing = tab.changePassword("right password", "new password");
  await waitFor(() => server.count("password/change/") == 1);
  await sleep(20);
  const refreshed = await tab.refresh().then(() => "ok", (e) => e.reason);
  await changing;
  await sleep(50);
  assert.deepEqual(b.ended, [], "a session end was announced");
  assert.equal(tab.state.signedIn, true);
  assert.equal(refreshed, "ok");
});

test("a refresh whose answer was lost is asked again at once, while the server's rotation " +
  "grace still gives the same successor", async (t) => {
  const server = fakeServer({ rotate: true, refreshDelay: 0 });
  // The server's grace (service/store/sessions.py _ROTATE): the replaced token presented
  // again soon after gets the same successor; later it is reuse and ends the session.
  const GRACE_MS = 2000;
  const answered = new Map(); // refresh token -> [its answer's text, when]
  let lose = 1;
  const fetch = async (input, init = {}) => {
    if (!String(input).endsWith("token/refresh/")) return server.fetch(input, init);
    const { refresh } = JSON.parse(init.body);
    const earlier = answered.get(refresh);
    if (earlier) {
      if (Date.now() - earlier[1] > GRACE_MS) return new Response(JSON.stringify({
        detail: "Token was already used", code: "token_not_valid", reason: "token_reused" }),
      { status: 401 });
      return new Response(earlier[0], { status: 200 });
    }
    const answer = await server.fetch(input, init);
    answered.set(refresh, [await answer.clone().text(), Date.now()]);
    if (lose-- > 0) throw new TypeError("Failed to fetch"); // rotated, but the answer is lost
    return answer;
  };
  const b = browser(t, server, { fetch });
  const tab = await b.tab();
  await tab.login("ada", "right password");
  const first = await tab.getAccessToken();
  await tab.refresh().catch(() => {}); // the tab still holds the replaced pair
  await waitFor(() => tab.getAccessToken().then((a) => a != first), GRACE_MS);
  server.time.ms += 3_600_000; // much later, the next refresh
  await tab.refresh();
  assert.deepEqual(b.ended, []);
  assert.equal(tab.state.signedIn, true);
});

for (const rotate of [false, true]) {
  test(`rotation ${rotate ? "on" : "off"}: a sign-out whose end crosses another tab's new pair ` +
    "on the channel signs both tabs out", async (t) => {
    const server = fakeServer({ rotate, refreshDelay: 0 });
    let open;
    const gate = new Promise((resolve) => (open = resolve));
    // Both answers are held, then given at once: each tab acts on its own before either
    // hears of the other's (a refresh and a sign-out answered in the same moment).
    const fetch = async (input, init) => {
      const answer = await server.fetch(input, init);
      if (/token\/refresh\/|logout\//.test(String(input))) await gate;
      return answer;
    };
    const b = browser(t, server, { fetch });
    const [refresher, leaver] = [await b.tab(), await b.tab()];
    await refresher.login("ada", "right password");
    await waitFor(() => leaver.state.signedIn);
    const refreshing = refresher.refresh().catch(() => {});
    await waitFor(() => server.count("token/refresh/") == 1);
    const leaving = leaver.logout();
    await waitFor(() => server.count("logout/") == 1);
    open();
    await Promise.all([refreshing, leaving]);
    await sleep(100);
    assert.equal(leaver.state.signedIn, false, "signed back in by the other tab's new pair");
    assert.equal(refresher.state.signedIn, false, "the sign-out never reached the other tab");
  });
}

test("a refresh refused 429 with a Retry-After of weeks is not asked again at once",
  async (t) => {
    const server = fakeServer({ refreshDelay: 0 });
    server.answer["token/refresh/"] = () => new Response(JSON.stringify({
      detail: "Request was throttled." }), { status: 429, headers: { "Retry-After": "3000000" } });
    const tab = await browser(t, server).tab();
    await tab.login("ada", "right password");
    await tab.refresh().catch(() => {});
    await sleep(200);
    assert.equal(server.count("token/refresh/"), 1);
  });

test("a password change answered as another tab's refresh is answered gives every tab the " +
  "change's pair, not the refresh's of the old password", async (t) => {
  const server = fakeServer({ refreshDelay: 0 });
  let open;
  const gate = new Promise((resolve) => (open = resolve));
  // The refresh was served just before the change, and both answers arrive at once.
  changeKeepsTheSession(server);
  const fetch = async (input, init) => {
    const answer = await server.fetch(input, init);
    if (/token\/refresh\/|password\/change\//.test(String(input))) await gate;
    return answer;
  };
  const b = browser(t, server, { fetch });
  const [changer, refresher] = [await b.tab(), await b.tab()];
  await changer.login("ada", "right password");
  await waitFor(() => refresher.state.signedIn);
  const refreshing = refresher.refresh().catch(() => {});
  await waitFor(() => server.count("token/refresh/") == 1);
  const changing = changer.changePassword("right password", "new password");
  await waitFor(() => server.count("password/change/") == 1);
  open();
  await Promise.all([refreshing, changing]);
  await sleep(100);
  assert.equal(await changer.getAccessToken(), server.changed.access);
  assert.equal(await refresher.getAccessToken(), server.changed.access,
    "the other tab kept the old password's pair (refused from now on: the session ends)");
});

test("a tab restored with a rotated-out pair in its storage, due for refresh, waits for the " +
  "open tabs' newer pair before refreshing", async (t) => {
  const server = fakeServer({ rotate: true, refreshDelay: 0 });
  const b = browser(t, server);
  // The open tab is busy: it hears the restored tab's hello 40 ms late.
  const Real = globalThis.BroadcastChannel;
  globalThis.BroadcastChannel = class extends Real {
    set onmessage(listener) {
      super.onmessage = (event) => setTimeout(() => listener(event), 40);
    }
  };
  let open;
  try {
    open = await b.tab();
  } finally {
    globalThis.BroadcastChannel = Real;
  }
  await open.login("ada", "right password");
  let kept;
  const copy = await b.tab({ storage: { get: () => null, set: (p) => void (kept ??= p) } });
  await waitFor(() => kept);
  copy.close();
  server.time.ms += 70_000; // the stored access token is due
  await open.refresh(); // rotated: the stored refresh token is replaced
  const before = server.calls.length;
  await b.tab({ storage: { get: () => kept, set() {} } });
  await sleep(200);
  const replayed = server.calls.slice(before)
    .filter((c) => c.path == "token/refresh/" && c.body.refresh == kept.refresh);
  assert.equal(replayed.length, 0, "refreshed with the replaced token");
  assert.deepEqual(b.ended, []);
});
