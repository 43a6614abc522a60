// What the client's unit tests share: a fake authsvc (a fetch that answers as API.md says and
// counts), a LockManager with Web Locks' semantics, a clock, and "tabs" (clients sharing one
// BroadcastChannel name, as the tabs of one origin do).
import { test as nodeTest } from "node:test";
import { createAuthClient } from "../src/authsvc.js";

/** node:test's test() with a time limit (a refresh loop must fail, not hang). */
export function test(name, options, fn) {
  if (typeof options == "function") [fn, options] = [options, {}];
  return nodeTest(name, { timeout: 10_000, ...options }, fn);
}

export const BASE = "http://auth.test/api/v1/auth/";
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const b64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
export const jwt = (payload) => `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(payload)}.sig`;

export function clock(start = 1_800_000_000_000) {
  const c = { ms: start, now: () => c.ms, seconds: () => Math.floor(c.ms / 1000) };
  return c;
}

const json = (status, body, headers = {}) =>
  new Response(body == null ? null : JSON.stringify(body),
    { status, headers: { "Content-Type": "application/json", ...headers } });

const refused = (reason) =>
  json(401, { detail: "Token is invalid", code: "token_not_valid", reason },
    { "WWW-Authenticate": "Bearer" });

/** A fake authsvc: every request is recorded in `calls`; `answer[path]` overrides a path. */
export function fakeServer({ time = clock(), rotate = false, accessTtl = 60, refreshDelay = 20, bearerDelay = 0 } = {}) {
  let serial = 0;
  const refreshTokens = new Map(); // live refresh token -> session id
  const accessTokens = new Set();
  const server = {
    time, rotate, calls: [], answer: {},
    /** Why a Bearer call with a live token is refused (null: accepted). */
    bearerRefusal: null,
    /** Why token/refresh/ refuses a live refresh token (null: accepted). */
    refreshRefusal: null,
    count: (path, method = "POST") =>
      server.calls.filter((c) => c.path == path && c.method == method).length,
    issue(sid = ++serial) {
      const now = time.seconds();
      const access = jwt({ token_type: "access", sid, n: ++serial, iat: now, exp: now + accessTtl });
      accessTokens.add(access);
      return access;
    },
    pair() {
      const sid = ++serial;
      const refresh = jwt({ token_type: "refresh", sid, n: ++serial, iat: time.seconds(), exp: time.seconds() + 86400 });
      refreshTokens.set(refresh, sid);
      return { access: server.issue(sid), refresh };
    },
    async fetch(input, init = {}) {
      const request = new Request(input, init);
      const url = new URL(request.url);
      const path = url.pathname.replace("/api/v1/auth/", "");
      const text = await request.text();
      const body = text ? JSON.parse(text) : null;
      const auth = request.headers.get("Authorization");
      const call = { path, method: request.method, body, auth, credentials: init.credentials, url: request.url };
      server.calls.push(call);
      // A refresh or retry loop fails its test instead of spinning until the time limit.
      if (server.calls.length > 500) throw new TypeError("runaway: over 500 requests");
      if (server.answer[path]) return server.answer[path](call);
      return route(call);
    },
  };

  function bearer(call) {
    if (!call.auth) return json(401, { detail: "Not authenticated", code: "not_authenticated" });
    const token = call.auth.replace("Bearer ", "");
    if (!accessTokens.has(token)) return refused("bad_signature");
    const exp = JSON.parse(Buffer.from(token.split(".")[1], "base64url")).exp;
    if (exp <= time.seconds()) return refused("token_expired");
    if (server.bearerRefusal) return refused(server.bearerRefusal);
    return null;
  }

  const user = { username: "ada", email: "ada@example.com" };
  const profile = { ...user, display_name: "Ada", role: "user" };

  async function route(call) {
    const { path, method, body } = call;
    if (path == "login/") {
      if (body.password != "right password") {
        return json(401, { detail: "No active account found with the given credentials", code: "no_active_account" });
      }
      return json(200, { user, ...server.pair(), device_token: "dev" });
    }
    if (path == "register/") return json(201, { user: { ...user, display_name: "" }, ...server.pair() });
    if (path == "token/refresh/") {
      await sleep(refreshDelay);
      const sid = refreshTokens.get(body.refresh);
      if (!sid) return refused("token_revoked");
      if (server.refreshRefusal) return refused(server.refreshRefusal);
      if (!server.rotate) return json(200, { access: server.issue(sid) });
      refreshTokens.delete(body.refresh);
      const refresh = jwt({ token_type: "refresh", sid, n: ++serial, exp: time.seconds() + 86400 });
      refreshTokens.set(refresh, sid);
      return json(200, { access: server.issue(sid), refresh });
    }
    if (path == "logout/") {
      if (!refreshTokens.delete(body.refresh_token)) return json(400, { detail: "Token is invalid" });
      return new Response(null, { status: 205 });
    }
    if (["password-reset/", "password-reset/confirm/", "verify-email/", "verify-email/resend/",
      "security/not-me/"].includes(path)) return json(200, { message: "ok" });
    await sleep(bearerDelay);
    const refusal = bearer(call);
    if (refusal) return refusal;
    if (path == "profile/" && method == "GET") return json(200, profile);
    if (path == "profile/" && method == "PATCH") return json(200, { ...profile, ...body });
    if (path == "profile/" && method == "DELETE") return new Response(null, { status: 204 });
    if (path == "password/change/") return json(200, server.pair());
    if (path == "logout-all/") return new Response(null, { status: 205 });
    if (path == "sessions/") return json(200, [{ id: "s1", current: true }]);
    if (path.startsWith("sessions/")) return new Response(null, { status: 204 });
    return json(404, { detail: "Not found." });
  }

  return server;
}

/** Web Locks' request(): exclusive, queued in order, `ifAvailable` granting null when held. */
export function fakeLocks() {
  const tails = new Map();
  const locks = {
    granted: 0,
    async request(name, options, callback) {
      if (typeof options == "function") [callback, options] = [options, {}];
      if (options.ifAvailable && tails.has(name)) return callback(null);
      const before = tails.get(name) || Promise.resolve();
      let release;
      const held = new Promise((resolve) => (release = resolve));
      const tail = before.then(() => held);
      tails.set(name, tail);
      await before;
      locks.granted++;
      try {
        return await callback({ name, mode: "exclusive" });
      } finally {
        release();
        if (tails.get(name) == tail) tails.delete(name);
      }
    },
  };
  return locks;
}

let channels = 0;

/** A browser: its tabs share a channel name, a fetch, a clock and (unless null) Web Locks.
 * Every tab is closed after the test. */
export function browser(t, server, options = {}) {
  const channelName = `test-${process.pid}-${++channels}`;
  const locks = "locks" in options ? options.locks : fakeLocks();
  const opened = [];
  t.after(() => opened.forEach((tab) => tab.close()));
  return {
    locks,
    channelName,
    ended: [],
    async tab(more = {}) {
      const index = opened.length;
      const client = createAuthClient({
        baseUrl: BASE, channelName, locks, fetch: server.fetch, now: server.time.now,
        // The app's own API: the page's origin in a browser (Node has no location).
        tokenOrigins: ["http://app.test"],
        onSessionEnd: (reason) => this.ended.push([index, reason]),
        ...options, ...more,
      });
      opened.push(client);
      await client.ready;
      return client;
    },
  };
}

/** A Storage (getItem/setItem/removeItem) in memory, for sessionStorage and localStorage. */
export function memoryStorage() {
  const items = new Map();
  return {
    items,
    getItem: (key) => (items.has(key) ? items.get(key) : null),
    setItem: (key, value) => items.set(key, String(value)),
    removeItem: (key) => items.delete(key),
  };
}

/** Polls `condition` (a tab's state changes when another tab's message arrives). */
export async function waitFor(condition, ms = 2000) {
  const end = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error("timed out waiting for " + condition);
    await sleep(5);
  }
}
