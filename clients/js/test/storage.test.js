// Where tokens live: memory only by default; sessionStorage, localStorage or the app's own
// storage when asked; and a new tab is given the session by a tab that has it.
import assert from "node:assert/strict";
import { browser, fakeServer, jwt, memoryStorage, test } from "./support.js";

function installStorage(t, kind) {
  const storage = memoryStorage();
  const key = kind + "Storage";
  globalThis[key] = storage;
  t.after(() => delete globalThis[key]);
  return storage;
}

test("memory (the default) writes to no storage", async (t) => {
  const session = installStorage(t, "session");
  const local = installStorage(t, "local");
  const tab = await browser(t, fakeServer()).tab();
  await tab.login("ada", "right password");
  assert.equal(session.items.size, 0);
  assert.equal(local.items.size, 0);
});

for (const kind of ["session", "local"]) {
  test(`${kind}: the pair and user are stored, a reload is signed in, logout clears it`, async (t) => {
    const storage = installStorage(t, kind);
    const server = fakeServer();
    const tab = await browser(t, server).tab({ storage: kind });
    await tab.login("ada", "right password");
    assert.equal(storage.items.size, 1);
    const [key, value] = [...storage.items][0];
    assert.ok(key.startsWith("test-"), "stored under the channel name");
    const stored = JSON.parse(value);
    assert.equal(stored.access, await tab.getAccessToken());
    assert.equal(stored.user.username, "ada");
    tab.close();

    const reloaded = await browser(t, server).tab({ storage: kind, channelName: key });
    assert.deepEqual(reloaded.state, { signedIn: true, user: { username: "ada", email: "ada@example.com" } });
    assert.equal(await reloaded.getAccessToken(), stored.access);
    await reloaded.logout();
    assert.equal(storage.items.size, 0);
  });
}

test("a stored pair whose refresh token has expired is not used", async (t) => {
  const server = fakeServer();
  const past = server.time.seconds() - 10;
  const expired = { access: jwt({ exp: past }), refresh: jwt({ exp: past }) };
  const tab = await browser(t, server).tab({ storage: { get: () => expired, set() {} } });
  assert.equal(tab.state.signedIn, false);
  assert.equal(await tab.getAccessToken(), null);
});

test("custom storage: an async get and set", async (t) => {
  const server = fakeServer();
  let kept = null;
  const storage = {
    get: async () => kept,
    set: async (tokens) => void (kept = tokens && { access: tokens.access, refresh: tokens.refresh }),
  };
  const tab = await browser(t, server).tab({ storage });
  await tab.login("ada", "right password");
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(kept.access, await tab.getAccessToken());
  const again = await browser(t, server).tab({ storage });
  assert.equal(again.state.signedIn, true);
  assert.equal(again.state.user, null, "a storage that keeps only tokens: the user is not known");
});

test("a storage that throws is an empty one, and a failing set breaks nothing", async (t) => {
  const storage = { get() { throw new Error("denied"); }, set() { throw new Error("full"); } };
  const tab = await browser(t, fakeServer()).tab({ storage });
  assert.equal(tab.state.signedIn, false);
  await tab.login("ada", "right password");
  assert.equal(tab.state.signedIn, true);
});

test("a new tab is given the session by an open one, without any storage", async (t) => {
  const server = fakeServer();
  const b = browser(t, server);
  const one = await b.tab();
  await one.login("ada", "right password");
  const started = Date.now();
  const two = await b.tab();
  assert.ok(Date.now() - started < 140, "ready on the answer, not after the wait");
  assert.deepEqual(two.state, one.state);
  assert.equal(await two.getAccessToken(), await one.getAccessToken());
  const profile = await two.getProfile();
  assert.equal(profile.username, "ada");
});

test("a new tab with no signed-in tab is ready, signed out, after a short wait", async (t) => {
  const started = Date.now();
  const tab = await browser(t, fakeServer()).tab();
  assert.ok(Date.now() - started >= 140);
  assert.deepEqual(tab.state, { signedIn: false, user: null });
  assert.equal(await tab.getAccessToken(), null);
});

test("subscribers hear sign-in and sign-out, in this tab and from other tabs", async (t) => {
  const b = browser(t, fakeServer());
  const one = await b.tab();
  const two = await b.tab();
  const heard = [];
  const unsubscribe = two.subscribe((state) => heard.push(state.signedIn));
  await one.login("ada", "right password");
  await new Promise((r) => setTimeout(r, 30));
  await one.logout();
  await new Promise((r) => setTimeout(r, 30));
  unsubscribe();
  await one.login("ada", "right password");
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(heard, [true, false]);
});
