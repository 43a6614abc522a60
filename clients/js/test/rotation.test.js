// token/refresh/ answers {access} (rotation off) or {access, refresh} (rotation on): a new
// refresh token is kept, stored and reaches every tab; without one the old one is kept.
import assert from "node:assert/strict";
import { browser, fakeServer, test, waitFor } from "./support.js";

const refreshBodies = (server) =>
  server.calls.filter((c) => c.path == "token/refresh/").map((c) => c.body.refresh);

test("rotation off: the same refresh token is sent on every refresh", async (t) => {
  const server = fakeServer({ rotate: false });
  const saved = [];
  const storage = { get: () => null, set: (tokens) => void saved.push(tokens) };
  const b = browser(t, server);
  const tab = await b.tab({ storage });
  await tab.login("ada", "right password");
  const first = await tab.refresh();
  const second = await tab.refresh();
  assert.notEqual(first, second);
  const [a, c] = refreshBodies(server);
  assert.equal(a, c);
  assert.equal(saved.at(-1).refresh, a);
  assert.equal(saved.at(-1).access, second);
});

test("rotation on: the new refresh token is stored and reaches the other tabs", async (t) => {
  const server = fakeServer({ rotate: true });
  const saved = [];
  const b = browser(t, server);
  const one = await b.tab({ storage: { get: () => null, set: (tokens) => void saved.push(tokens) } });
  const two = await b.tab();
  await one.login("ada", "right password");
  await waitFor(() => two.state.signedIn);
  await one.refresh(); // rotates: the login's refresh token is now refused by the server
  const rotated = saved.at(-1).refresh;
  assert.notEqual(rotated, saved[0].refresh);
  await waitFor(async () => (await two.getAccessToken()) == saved.at(-1).access);
  // The other tab refreshes with the rotated token (the old one would end the session).
  await two.refresh();
  assert.deepEqual(refreshBodies(server), [saved[0].refresh, rotated]);
  assert.deepEqual(b.ended, []);
  assert.ok(one.state.signedIn && two.state.signedIn);
  await waitFor(() => saved.at(-1).refresh != rotated);
  // And a third tab opened now is given the newest pair.
  const three = await b.tab();
  assert.equal(await three.getAccessToken(), await two.getAccessToken());
  await three.refresh();
  assert.equal(server.count("token/refresh/"), 3);
  assert.deepEqual(b.ended, []);
});

test("a password change's new pair reaches every tab", async (t) => {
  const server = fakeServer();
  const b = browser(t, server);
  const one = await b.tab();
  const two = await b.tab();
  await one.login("ada", "right password");
  await waitFor(() => two.state.signedIn);
  const before = await two.getAccessToken();
  await one.changePassword("right password", "a new password");
  const change = server.calls.find((c) => c.path == "password/change/");
  assert.deepEqual(change.body,
    { old_password: "right password", password: "a new password", password2: "a new password" });
  const after = await one.getAccessToken();
  assert.notEqual(after, before);
  await waitFor(() => two.state.signedIn);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await two.getAccessToken(), after);
});

test("a pair older than the tab's own (an answer that crossed a refresh) is ignored", async (t) => {
  const server = fakeServer();
  const b = browser(t, server);
  const tab = await b.tab();
  await tab.login("ada", "right password");
  const old = { access: await tab.getAccessToken(), refresh: "r" };
  server.time.ms += 1000;
  const fresh = await tab.refresh();
  const channel = new BroadcastChannel(b.channelName);
  t.after(() => channel.close());
  channel.postMessage({ t: "state", tokens: old, user: null });
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(await tab.getAccessToken(), fresh);
  assert.equal(tab.state.user.username, "ada");
});
