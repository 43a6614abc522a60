// The second factor: login's MFA step, re-authentication and the factor's calls, against the
// fake authsvc answering as the MFA contract says.
import assert from "node:assert/strict";
import { AuthError, MfaRequiredError } from "../src/authsvc.js";
import { browser, fakeServer, test, waitFor } from "./support.js";

const json = (status, body) =>
  new Response(body == null ? null : JSON.stringify(body),
    { status, headers: { "Content-Type": "application/json" } });

const user = { username: "ada", email: "ada@example.com" };
const sidOf = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url")).sid;

/** login/ answers the MFA step; login/mfa/ takes "123456" (TOTP) or "aaaa-bbbb-cccc" once. */
function mfaServer() {
  const server = fakeServer();
  const live = new Set();
  let spent = false;
  server.answer["login/"] = ({ body }) => {
    if (body.password != "right password") return json(401, { detail: "No", code: "no_active_account" });
    const token = "mfa-" + (live.size + 1);
    live.add(token);
    return json(200, { mfa_required: true, mfa_token: token, methods: ["totp", "recovery_code"] });
  };
  server.answer["login/mfa/"] = ({ body }) => {
    if (!live.has(body.mfa_token)) return json(401, { detail: "Start again", code: "mfa_token_invalid" });
    const right = body.method == "totp" ? body.code == "123456" : body.code == "aaaa-bbbb-cccc" && !spent;
    if (!right) return json(401, { detail: "Wrong code", code: "mfa_code_invalid" });
    if (body.method == "recovery_code") spent = true;
    live.delete(body.mfa_token);
    return json(200, { user, ...server.pair(), device_token: "dev" });
  };
  return server;
}

test("login with a second factor: not signed in until complete() sends a right code", async (t) => {
  const server = mfaServer();
  const tabs = browser(t, server);
  const [tab, other] = [await tabs.tab(), await tabs.tab()];
  const step = await tab.login("ada", "right password").then(
    () => assert.fail("login resolved without the second factor"), (e) => e);
  assert.ok(step instanceof MfaRequiredError && step instanceof AuthError);
  assert.equal(step.code, "mfa_required");
  assert.deepEqual(step.methods, ["totp", "recovery_code"]);
  assert.equal(tab.state.signedIn, false);
  assert.equal(await tab.getAccessToken(), null);

  const wrong = await step.complete("totp", "000000").catch((e) => e);
  assert.ok(wrong instanceof AuthError);
  assert.deepEqual([wrong.status, wrong.code], [401, "mfa_code_invalid"]);
  assert.equal(tab.state.signedIn, false, "a wrong code signs nobody in");

  assert.deepEqual(await step.complete("totp", "123456"), user); // the same step, tried again
  assert.deepEqual(tab.state, { signedIn: true, user });
  await waitFor(() => other.state.signedIn); // as a login does: every tab
  assert.equal(await other.getAccessToken(), await tab.getAccessToken());
  assert.deepEqual(server.calls.filter((c) => c.path == "login/mfa/").map((c) => c.body), [
    { mfa_token: "mfa-1", method: "totp", code: "000000" },
    { mfa_token: "mfa-1", method: "totp", code: "123456" },
  ]);

  const again = await step.complete("totp", "123456").catch((e) => e); // spent
  assert.equal(again.code, "mfa_token_invalid");
  assert.equal(tab.state.signedIn, true, "a spent step leaves the session alone");
});

test("a recovery code completes the step; a wrong password is the usual 401", async (t) => {
  const server = mfaServer();
  const tab = await browser(t, server).tab();
  const wrong = await tab.login("ada", "wrong").catch((e) => e);
  assert.ok(!(wrong instanceof MfaRequiredError));
  assert.equal(wrong.code, "no_active_account");
  const step = await tab.login("ada@example.com", "right password").catch((e) => e);
  assert.deepEqual(await step.complete("recovery_code", "aaaa-bbbb-cccc"), user);
  assert.equal(tab.state.signedIn, true);
  await tab.logout();
  const next = await tab.login("ada", "right password").catch((e) => e);
  assert.equal((await next.complete("recovery_code", "aaaa-bbbb-cccc").catch((e) => e)).code,
    "mfa_code_invalid");
  assert.equal(tab.state.signedIn, false);
});

test("reauthenticate: the new access token becomes the session's, in every tab", async (t) => {
  const server = fakeServer();
  server.answer["reauth/"] = (call) => {
    const sid = sidOf(call.auth.replace("Bearer ", ""));
    return json(200, { access: server.issue(sid), auth_time: server.time.seconds() });
  };
  const tabs = browser(t, server);
  const [tab, other] = [await tabs.tab(), await tabs.tab()];
  await tab.login("ada", "right password");
  await waitFor(() => other.state.signedIn);
  const before = await tab.getAccessToken();

  assert.equal(await tab.reauthenticate({ password: "right password" }), undefined);
  const after = await tab.getAccessToken();
  assert.notEqual(after, before);
  assert.equal(sidOf(after), sidOf(before));
  await waitFor(async () => (await other.getAccessToken()) == after);
  await tab.reauthenticate({ method: "totp", code: "123456" });

  const reauths = server.calls.filter((c) => c.path == "reauth/");
  assert.deepEqual(reauths.map((c) => [c.method, c.body, c.auth]), [
    ["POST", { password: "right password" }, "Bearer " + before],
    ["POST", { method: "totp", code: "123456" }, "Bearer " + after],
  ]);
  await tab.getProfile(); // the new token is the one sent
  assert.equal(server.calls.at(-1).auth, "Bearer " + (await tab.getAccessToken()));
  await tab.refresh(); // and the refresh token is the session's still
  assert.equal(server.calls.at(-1).path, "token/refresh/");
  assert.equal(tab.state.signedIn, true);
});

test("403 step_up_required: an AuthError with the methods; the session stays", async (t) => {
  const server = fakeServer();
  const stepUp = { detail: "Confirm it is you", code: "step_up_required", methods: ["password", "totp", "recovery_code"] };
  server.answer["mfa/recovery-codes/"] = () => json(403, stepUp);
  const tab = await browser(t, server).tab();
  await tab.login("ada", "right password");
  const error = await tab.regenerateRecoveryCodes().catch((e) => e);
  assert.ok(error instanceof AuthError);
  assert.deepEqual([error.status, error.code, error.message], [403, "step_up_required", "Confirm it is you"]);
  assert.deepEqual(error.methods, ["password", "totp", "recovery_code"]);
  assert.deepEqual(error.body, stepUp);
  assert.equal(tab.state.signedIn, true);
  assert.ok(await tab.getAccessToken());
});

test("the factor's calls: paths, methods, bodies, token; confirm keeps its new access token", async (t) => {
  const server = fakeServer();
  const status = {
    methods: [], totp: { enabled: false, pending: false, confirmed_at: null },
    recovery_codes_left: 0, enrolment_required: false, step_up_max_age: 300,
  };
  const enrolment = { secret: "JBSWY3DPEHPK3PXP", otpauth_uri: "otpauth://totp/x", qr_svg: "<svg/>" };
  const codes = Array.from({ length: 10 }, (_, i) => `code-${i}`);
  let confirmed = null;
  server.answer["mfa/"] = () => json(200, status);
  server.answer["mfa/totp/"] = ({ method }) =>
    method == "POST" ? json(201, enrolment) : new Response(null, { status: 204 });
  server.answer["mfa/totp/confirm/"] = (call) => {
    confirmed = server.issue(sidOf(call.auth.replace("Bearer ", "")));
    return json(200, { recovery_codes: codes, access: confirmed });
  };
  server.answer["mfa/recovery-codes/"] = () => json(200, { recovery_codes: codes.slice().reverse() });
  const tab = await browser(t, server).tab();
  await tab.login("ada", "right password");
  const token = "Bearer " + (await tab.getAccessToken());

  assert.deepEqual(await tab.mfaStatus(), status);
  assert.deepEqual(await tab.enrolTotp(), enrolment);
  assert.deepEqual(await tab.confirmTotp("123 456"), codes);
  assert.equal(await tab.getAccessToken(), confirmed);
  assert.deepEqual(await tab.regenerateRecoveryCodes(), codes.slice().reverse());
  assert.equal(await tab.disableTotp(), undefined);

  const seen = server.calls.slice(1).map((c) => [c.method, c.path, c.body, c.auth]);
  assert.deepEqual(seen, [
    ["GET", "mfa/", null, token],
    ["POST", "mfa/totp/", {}, token],
    ["POST", "mfa/totp/confirm/", { code: "123 456" }, token],
    ["POST", "mfa/recovery-codes/", {}, "Bearer " + confirmed],
    ["DELETE", "mfa/totp/", null, "Bearer " + confirmed],
  ]);
});
