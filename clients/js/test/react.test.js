// src/react.js run against test/fake-react.js (the "react" import is redirected by a module
// hook): useAuth follows the client's state and readiness, RequireAuth picks children or
// fallback and sends a signed-out visitor to redirectTo.
import { register } from "node:module";
import assert from "node:assert/strict";
import { browser, fakeServer, sleep, test } from "./support.js";

const fake = new URL("./fake-react.js", import.meta.url).href;
register("data:text/javascript," + encodeURIComponent(
  `export async function resolve(specifier, context, next) {
     return specifier == "react" ? { url: ${JSON.stringify(fake)}, shortCircuit: true } : next(specifier, context);
   }`));
const { useAuth, RequireAuth } = await import("../src/react.js");
const { render } = await import("react");

test("useAuth: not ready, then ready and signed out, then signed in with the user", async (t) => {
  const b = browser(t, fakeServer());
  const tab = await b.tab();
  const other = await b.tab();
  const view = render(() => useAuth(other));
  assert.equal(view.output.ready, false, "ready is set by an effect, after the first render");
  await sleep(0);
  assert.deepEqual(view.output, { signedIn: false, user: null, ready: true });
  await tab.login("ada", "right password");
  await sleep(30);
  assert.deepEqual(view.output, { signedIn: true, user: { username: "ada", email: "ada@example.com" }, ready: true });
  await tab.logout();
  await sleep(30);
  assert.equal(view.output.signedIn, false);
});

test("RequireAuth: the fallback until signed in, then the children", async (t) => {
  const tab = await browser(t, fakeServer()).tab();
  const view = render(RequireAuth, { client: tab, fallback: "sign in first", children: "orders" });
  await sleep(0);
  assert.deepEqual(view.output.children, ["sign in first"]);
  await tab.login("ada", "right password");
  assert.deepEqual(view.output.children, ["orders"]);
});

test("RequireAuth with redirectTo sends a signed-out visitor there", async (t) => {
  const assigned = [];
  globalThis.location = { href: "http://app.test/orders", assign: (url) => assigned.push(url) };
  t.after(() => delete globalThis.location);
  const tab = await browser(t, fakeServer()).tab();
  const view = render(RequireAuth, { client: tab, redirectTo: "/signin?next={next}", children: "orders" });
  await sleep(10);
  assert.deepEqual(view.output.children, [null]);
  assert.deepEqual(assigned, ["/signin?next=" + encodeURIComponent("http://app.test/orders")]);
});
