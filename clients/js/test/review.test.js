// Found in review (branch attack): a tab's clock ahead of the server's, a refresh answer that
// arrives after the session ended, and auth.fetch() to another origin.
import assert from "node:assert/strict";
import { BASE, browser, clock, fakeServer, memoryStorage, sleep, test, waitFor } from "./support.js";

test("a tab whose clock is ahead of the server's by more than a token's lifetime does not " +
  "refresh in a loop", async (t) => {
  const server = fakeServer({ accessTtl: 60, refreshDelay: 5 });
  // Ten minutes fast (a hand-set clock, a wrong time zone): every token looks expired here.
  const fast = clock(server.time.ms + 600_000);
  const b = browser(t, server, { now: fast.now });
  const tab = await b.tab();
  await tab.login("ada", "right password");
  const other = await b.tab(); // signed in by the first tab, never having talked to the server
  await sleep(300);
  assert.equal(server.count("token/refresh/"), 0,
    `${server.count("token/refresh/")} refreshes in 300 ms of a 60 s token`);
  for (const each of [tab, other]) assert.equal((await each.getProfile()).username, "ada");
  // The timer still refreshes near the server's exp, once.
  server.time.ms += 50_000;
  fast.ms += 50_000;
  const old = await tab.getAccessToken().then(() => server.count("token/refresh/"));
  assert.equal(old, 1, "a token inside its margin by the server's clock is refreshed");
  await sleep(50); // the new pair's broadcast
  assert.equal(await other.getAccessToken(), await tab.getAccessToken());
  assert.equal(server.count("token/refresh/"), 1);
});

test("a page reloaded with a clock ahead of the server's (session storage) does not refresh " +
  "at once", async (t) => {
  globalThis.sessionStorage = memoryStorage();
  t.after(() => delete globalThis.sessionStorage);
  const server = fakeServer({ accessTtl: 60, refreshDelay: 5 });
  const fast = clock(server.time.ms + 600_000);
  const first = browser(t, server, { now: fast.now, storage: "session" });
  const tab = await first.tab();
  await tab.login("ada", "right password");
  tab.close(); // the page navigates: the next page's client starts from storage alone
  const reloaded = await browser(t, server, { now: fast.now, storage: "session",
    channelName: first.channelName }).tab();
  assert.equal(reloaded.state.signedIn, true);
  await sleep(100);
  assert.equal(server.count("token/refresh/"), 0);
});

test("a refresh answered after a logout does not sign the tabs back in", async (t) => {
  const server = fakeServer({ rotate: true, refreshDelay: 0 });
  // The server rotates at once; its answer is on the wire while the user signs out.
  const slowAnswers = async (input, init) => {
    const answer = await server.fetch(input, init);
    if (String(input).endsWith("token/refresh/")) await sleep(80);
    return answer;
  };
  const b = browser(t, server, { fetch: slowAnswers });
  const [tab, other] = [await b.tab(), await b.tab()];
  await tab.login("ada", "right password");
  const refreshing = tab.refresh().then(() => "resolved", (e) => e);
  await waitFor(() => server.count("token/refresh/") == 1); // rotated; the answer is on its way
  await tab.logout();
  const outcome = await refreshing;
  await sleep(50);
  assert.equal(tab.state.signedIn, false, "signed back in by the late answer");
  assert.equal(other.state.signedIn, false, "the other tab signed back in by the late answer");
  assert.equal(outcome?.name, "AuthError", `refresh() settled with ${outcome}`);
});

test("a refresh answered after a logout with rotation off settles with an AuthError",
  async (t) => {
    const server = fakeServer({ rotate: false, refreshDelay: 0 });
    const slowAnswers = async (input, init) => {
      const answer = await server.fetch(input, init);
      if (String(input).endsWith("token/refresh/")) await sleep(80);
      return answer;
    };
    const tab = await browser(t, server, { fetch: slowAnswers }).tab();
    await tab.login("ada", "right password");
    const refreshing = tab.refresh().then(() => "resolved", (e) => e);
    await waitFor(() => server.count("token/refresh/") == 1);
    await tab.logout();
    const outcome = await refreshing;
    assert.equal(outcome?.name, "AuthError", `refresh() settled with ${outcome}`);
    assert.equal(tab.state.signedIn, false);
  });

test("auth.fetch() to an origin that is neither the page's nor authsvc's carries no token, " +
  "and that origin's 401 does not end the session",
async (t) => {
  const server = fakeServer();
  const elsewhere = [];
  // A third party's API (an app passing a URL from its data, an analytics endpoint, ...):
  // it records what it gets and answers as a simplejwt service with other keys would.
  const fetch = async (input, init) => {
    const request = new Request(input, init);
    if (new URL(request.url).origin != new URL(BASE).origin) {
      elsewhere.push(request.headers.get("Authorization"));
      return new Response(JSON.stringify({ detail: "Token is invalid", code: "token_not_valid" }),
        { status: 401, headers: { "Content-Type": "application/json" } });
    }
    return server.fetch(input, init);
  };
  const b = browser(t, server, { fetch });
  const [tab, other] = [await b.tab(), await b.tab()];
  await tab.login("ada", "right password");
  const answer = await tab.fetch("https://third-party.example/v1/data");
  assert.equal(answer.status, 401);
  assert.deepEqual(elsewhere, [null], "the access token went to another origin");
  await sleep(20);
  assert.equal(tab.state.signedIn, true, "another origin's 401 ended the session");
  assert.equal(other.state.signedIn, true);
});

test("auth.fetch() attaches the token to an origin listed in tokenOrigins", async (t) => {
  const server = fakeServer();
  const seen = [];
  const fetch = async (input, init) => {
    const request = new Request(input, init);
    if (new URL(request.url).origin == "https://api.example") {
      seen.push(request.headers.get("Authorization"));
      return new Response("{}", { status: 200, headers: { "Content-Type": "application/json" } });
    }
    return server.fetch(input, init);
  };
  const b = browser(t, server, { fetch, tokenOrigins: ["https://api.example/ignored/path"] });
  const tab = await b.tab();
  await tab.login("ada", "right password");
  assert.equal((await tab.fetch("https://api.example/orders")).status, 200);
  assert.deepEqual(seen, ["Bearer " + (await tab.getAccessToken())]);
});
