// Each call's path, method, body and headers, as API.md and the README's table say.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createAuthClient } from "../src/authsvc.js";
import { BASE, browser, fakeServer, test } from "./support.js";

test("every endpoint: path, method, body, token", async (t) => {
  const server = fakeServer();
  const tab = await browser(t, server).tab();
  const registered = await tab.register({ username: "ada", email: "ada@example.com", password: "pw-long-enough" });
  assert.equal(registered.signedIn, true);
  const user = await tab.login("ada@example.com", "right password");
  assert.deepEqual(user, { username: "ada", email: "ada@example.com" });
  const token = "Bearer " + (await tab.getAccessToken());

  assert.deepEqual(await tab.updateProfile({ display_name: "Ada L." }),
    { username: "ada", email: "ada@example.com", display_name: "Ada L.", role: "user" });
  assert.equal(tab.state.user.display_name, "Ada L.", "the state follows the profile");
  assert.deepEqual(await tab.listSessions(), [{ id: "s1", current: true }]);
  await tab.revokeSession("s/2");
  await tab.requestPasswordReset("ada@example.com");
  await tab.confirmPasswordReset("tok", "new password");
  await tab.verifyEmail("vtok");
  await tab.resendVerification("ada@example.com");
  await tab.notMe("ntok");

  const seen = server.calls.map((c) => [c.method, c.path, c.body, c.auth && c.auth == token]);
  assert.deepEqual(seen, [
    ["POST", "register/", { username: "ada", email: "ada@example.com", password: "pw-long-enough", password2: "pw-long-enough" }, null],
    ["POST", "login/", { username_or_email: "ada@example.com", password: "right password" }, null],
    ["PATCH", "profile/", { display_name: "Ada L." }, true],
    ["GET", "sessions/", null, true],
    ["DELETE", "sessions/s%2F2/", null, true],
    ["POST", "password-reset/", { email: "ada@example.com" }, null],
    ["POST", "password-reset/confirm/", { token: "tok", password: "new password", password2: "new password" }, null],
    ["POST", "verify-email/", { token: "vtok" }, null],
    ["POST", "verify-email/resend/", { email: "ada@example.com" }, null],
    ["POST", "security/not-me/", { token: "ntok" }, null],
  ]);
  for (const c of server.calls) {
    assert.equal(c.credentials, "same-origin", c.path);
    assert.ok(c.url.startsWith(BASE), c.url);
  }
});

test("register with verification required answers {user} only: not signed in", async (t) => {
  const server = fakeServer();
  server.answer["register/"] = () => new Response(JSON.stringify({ user: { username: "ada", email: "a@b.c" } }), { status: 201 });
  const tab = await browser(t, server).tab();
  const result = await tab.register({ username: "ada", email: "a@b.c", password: "p", password2: "q", role: "user" });
  assert.deepEqual(result, { user: { username: "ada", email: "a@b.c" }, signedIn: false });
  assert.equal(tab.state.signedIn, false);
  assert.deepEqual(server.calls[0].body, { username: "ada", email: "a@b.c", password: "p", password2: "q", role: "user" });
});

test("a baseUrl without its trailing slash, and a URL object, are the same base", async (t) => {
  const server = fakeServer();
  for (const baseUrl of [BASE.slice(0, -1), new URL(BASE)]) {
    const client = createAuthClient({ baseUrl, fetch: server.fetch, locks: null, channelName: "base-" + Math.random() });
    t.after(() => client.close());
    await client.requestPasswordReset("a@b.c");
  }
  assert.deepEqual(server.calls.map((c) => c.url), [BASE + "password-reset/", BASE + "password-reset/"]);
});

test("the app's fetch() keeps the request's method, headers and body, and adds the token", async (t) => {
  const server = fakeServer();
  server.answer["/api/orders"] = () => new Response("{}", { status: 201 });
  const tab = await browser(t, server).tab();
  await tab.login("ada", "right password");
  const res = await tab.fetch("http://app.test/api/orders", {
    method: "POST", headers: { "X-Thing": "1", "Content-Type": "application/json" }, body: '{"n":1}',
  });
  assert.equal(res.status, 201);
  const call = server.calls.at(-1);
  assert.deepEqual([call.method, call.body, call.auth], ["POST", { n: 1 }, "Bearer " + (await tab.getAccessToken())]);
});

test("the client has exactly the members authsvc.d.ts declares for AuthClient", async (t) => {
  const declared = await readFile(new URL("../src/authsvc.d.ts", import.meta.url), "utf8");
  const body = declared.slice(declared.indexOf("export interface AuthClient {"));
  const block = body.slice(0, body.indexOf("\n}"));
  const names = [...block.matchAll(/^ {2}(?:readonly )?(\w+)[(:]/gm)].map((m) => m[1]).sort();
  assert.ok(names.length > 20, names.join());
  const client = createAuthClient({ baseUrl: BASE, locks: null, channelName: "members" });
  t.after(() => client.close());
  assert.deepEqual(Object.keys(client).sort(), names);
});
