// Every failure is an AuthError with the API's status, code, reason, fields and Retry-After.
import assert from "node:assert/strict";
import { AuthError, createAuthClient } from "../src/authsvc.js";
import { browser, fakeServer, test } from "./support.js";

const answering = (status, body, headers = {}) => () =>
  new Response(typeof body == "string" ? body : JSON.stringify(body), { status, headers });

async function failure(t, path, answer, run) {
  const server = fakeServer();
  server.answer[path] = answer;
  const tab = await browser(t, server).tab();
  try {
    await run(tab);
  } catch (error) {
    assert.ok(error instanceof AuthError, "an AuthError, not " + error);
    assert.ok(error instanceof Error);
    return error;
  }
  assert.fail("the call did not fail");
}

test("400: field messages in DRF's shape; the first one is the message", async (t) => {
  const body = { password: ["This password is too common."], non_field_errors: ["Passwords differ."] };
  const error = await failure(t, "register/", answering(400, body),
    (tab) => tab.register({ username: "ada", email: "a@example.com", password: "password" }));
  assert.equal(error.status, 400);
  assert.deepEqual(error.fields, body);
  assert.equal(error.message, "This password is too common.");
  assert.deepEqual(error.body, body);
  assert.equal(error.code, null);
  assert.equal(error.retryAfter, null);
});

test("400 with only a detail (an unparseable body): also a non-field error", async (t) => {
  const error = await failure(t, "login/", answering(400, { detail: "JSON parse error" }),
    (tab) => tab.login("ada", "x"));
  assert.deepEqual(error.fields, { non_field_errors: ["JSON parse error"] });
  assert.equal(error.message, "JSON parse error");
});

test("401: code and reason", async (t) => {
  const wrong = await failure(t, "login/", undefined, (tab) => tab.login("ada", "wrong password"));
  assert.equal(wrong.status, 401);
  assert.equal(wrong.code, "no_active_account");
  assert.equal(wrong.reason, null);
  assert.deepEqual(wrong.fields, {});

  const refused = await failure(t, "verify-email/", answering(401,
    { detail: "Token is invalid", code: "token_not_valid", reason: "bad_signature" }),
  (tab) => tab.verifyEmail("x"));
  assert.equal(refused.code, "token_not_valid");
  assert.equal(refused.reason, "bad_signature");
});

test("a Bearer call while signed out: 401 not_authenticated from the server", async (t) => {
  const error = await failure(t, "", undefined, (tab) => tab.getProfile());
  assert.equal(error.status, 401);
  assert.equal(error.code, "not_authenticated");
});

test("429: Retry-After in seconds, or from an HTTP date", async (t) => {
  const error = await failure(t, "login/",
    answering(429, { detail: "Too many requests" }, { "Retry-After": "30" }), (tab) => tab.login("ada", "x"));
  assert.equal(error.status, 429);
  assert.equal(error.retryAfter, 30);
  const date = new Date(Date.now() + 120_000).toUTCString();
  const dated = await failure(t, "password-reset/",
    answering(429, { detail: "Slow down" }, { "Retry-After": date }), (tab) => tab.requestPasswordReset("a@b.c"));
  assert.ok(dated.retryAfter > 100 && dated.retryAfter <= 120, String(dated.retryAfter));
});

test("network failure: status 0", async (t) => {
  const error = await failure(t, "login/", () => Promise.reject(new TypeError("Failed to fetch")),
    (tab) => tab.login("ada", "x"));
  assert.equal(error.status, 0);
  assert.equal(error.code, null);
  assert.match(error.message, /Failed to fetch/);
  assert.equal(error.cause.name, "TypeError", "what fetch() threw is the cause");
});

test("a body that is not JSON (a proxy's error page) is kept as text", async (t) => {
  const page = "<html><body>Bad gateway</body></html>";
  const error = await failure(t, "login/", answering(502, page, { "Content-Type": "text/html" }),
    (tab) => tab.login("ada", "x"));
  assert.equal(error.status, 502);
  assert.equal(error.body, page);
  assert.equal(error.code, null);
  assert.deepEqual(error.fields, {});
  assert.equal(error.message, "HTTP 502");
});

test("the app's fetch() answers the app's Response, and rejects only with an AuthError", async (t) => {
  const server = fakeServer();
  server.answer["/api/missing"] = answering(404, { detail: "Not found." });
  server.answer["/api/down"] = () => Promise.reject(new TypeError("offline"));
  const tab = await browser(t, server).tab();
  const res = await tab.fetch("http://app.test/api/missing");
  assert.equal(res.status, 404);
  await assert.rejects(tab.fetch("http://app.test/api/down"), { name: "AuthError", status: 0 });
});

test("requireAuth() signed out, without redirectTo: rejects with a 401", async (t) => {
  const server = fakeServer();
  const tab = await browser(t, server).tab();
  await assert.rejects(tab.requireAuth(), { name: "AuthError", status: 401, code: "not_authenticated" });
  assert.equal(server.calls.length, 0, "known signed out: no request");
});

test("requireAuth() signed out, with redirectTo: goes there with the page's URL as next", async (t) => {
  const assigned = [];
  globalThis.location = { href: "http://app.test/orders?id=7", assign: (url) => assigned.push(url) };
  t.after(() => delete globalThis.location);
  const tab = await browser(t, fakeServer()).tab();
  let settled = false;
  tab.requireAuth({ redirectTo: "/auth/signin?next={next}" }).finally(() => (settled = true));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(assigned, ["/auth/signin?next=" + encodeURIComponent("http://app.test/orders?id=7")]);
  assert.equal(settled, false, "never resolves: the page is leaving");
});

test("requireAuth() signed in: the profile", async (t) => {
  const tab = await browser(t, fakeServer()).tab();
  await tab.login("ada", "right password");
  const profile = await tab.requireAuth({ redirectTo: "/auth/signin" });
  assert.equal(profile.role, "user");
});

test("without baseUrl outside authsvc: a TypeError saying so", () => {
  assert.throws(() => createAuthClient(), { name: "TypeError", message: /baseUrl/ });
});

test("refresh() while signed out: a 401 not_authenticated, no request", async (t) => {
  const server = fakeServer();
  const tab = await browser(t, server).tab();
  await assert.rejects(tab.refresh(), { name: "AuthError", status: 401, code: "not_authenticated" });
  assert.equal(server.calls.length, 0);
});
