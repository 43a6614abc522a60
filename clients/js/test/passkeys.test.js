// Passkeys: the client's calls around navigator.credentials (mocked here: Node has no WebAuthn),
// the base64url <-> ArrayBuffer conversions both ways (the browser's parse*FromJSON / toJSON()
// when it has them, the client's own otherwise), and the requests the passkey contract names.
import assert from "node:assert/strict";
import { AuthError, MfaRequiredError } from "../src/authsvc.js";
import { browser, fakeServer, test, waitFor } from "./support.js";

const json = (status, body) =>
  new Response(body == null ? null : JSON.stringify(body),
    { status, headers: { "Content-Type": "application/json" } });

const user = { username: "ada", email: "ada@example.com" };
const sidOf = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url")).sid;
const buffer = (...bytes) => new Uint8Array(bytes).buffer;
const bytesOf = (value) => [...new Uint8Array(value)];

// Base64url without padding, with both URL-safe characters: [0xfb, 0xff] is "+/8=" in base64.
const CHALLENGE = "-_8";
const USER_ID = "AQID"; // [1, 2, 3]
const KEY_ID = "BAUG_w"; // [4, 5, 6, 255]
const creationOptions = {
  rp: { id: "localhost", name: "authsvc" },
  user: { id: USER_ID, name: "ada", displayName: "ada" },
  challenge: CHALLENGE,
  pubKeyCredParams: [{ type: "public-key", alg: -7 }],
  timeout: 60000,
  excludeCredentials: [{ id: KEY_ID, type: "public-key", transports: ["usb"] }],
  authenticatorSelection: { residentKey: "preferred", userVerification: "preferred" },
  attestation: "none",
};
const requestOptions = (allow = []) => ({
  challenge: CHALLENGE, timeout: 60000, rpId: "localhost", allowCredentials: allow,
  userVerification: "required",
});
const passkey = {
  id: "cred-1", name: "Laptop", created: "2026-01-01T00:00:00Z", last_used: null,
  transports: ["internal"], backup_eligible: false, backup_state: false, discoverable: true,
};

/** A browser's navigator.credentials and PublicKeyCredential, recording what they were asked.
 * `native`: the browser has parse*OptionsFromJSON and toJSON() (Chromium 129+); else not. */
function authenticator(t, { native = false, conditional = true, hold = false } = {}) {
  const seen = [];
  const device = { seen, refuse: null, hold };
  const made = (response) => {
    const credential = {
      id: "9_8", rawId: buffer(0xf7, 0xff), type: "public-key", authenticatorAttachment: "platform",
      response, getClientExtensionResults: () => ({}),
    };
    if (native) credential.toJSON = () => ({ id: "9_8", native: true });
    return credential;
  };
  globalThis.navigator = {
    credentials: {
      async create(options) {
        seen.push(["create", options]);
        if (device.refuse) throw new DOMException("refused", device.refuse);
        return made({
          clientDataJSON: buffer(123, 125), attestationObject: buffer(0xa3, 0x01),
          getTransports: () => ["internal", "hybrid"],
        });
      },
      async get(options) {
        seen.push(["get", options]);
        if (device.refuse) throw new DOMException("refused", device.refuse);
        if (device.hold) {
          // Pending until aborted, as autofill is until the user picks a passkey.
          await new Promise((_, reject) => {
            const abort = () => reject(options.signal.reason);
            if (options.signal.aborted) abort();
            options.signal.addEventListener("abort", abort);
          });
        }
        return made({
          clientDataJSON: buffer(123, 125), authenticatorData: buffer(0x49, 0x96),
          signature: buffer(0x30, 0x45), userHandle: buffer(1, 2, 3),
        });
      },
    },
  };
  globalThis.PublicKeyCredential = {
    isConditionalMediationAvailable: async () => conditional,
    ...(native && {
      parseCreationOptionsFromJSON: (o) => ({ parsed: "creation", o }),
      parseRequestOptionsFromJSON: (o) => ({ parsed: "request", o }),
    }),
  };
  t.after(() => {
    delete globalThis.navigator;
    delete globalThis.PublicKeyCredential;
  });
  return device;
}

/** The fake authsvc, with the passkey endpoints answering as the contract says. */
function passkeyServer() {
  const server = fakeServer();
  const bearerSid = (call) => sidOf(call.auth.replace("Bearer ", ""));
  server.answer["webauthn/register/options/"] = () => json(200, { publicKey: creationOptions });
  server.answer["webauthn/register/"] = (call) =>
    json(201, { credential: passkey, recovery_codes: ["aaaa-bbbb-cccc"], access: server.issue(bearerSid(call)) });
  server.answer["webauthn/login/options/"] = () => json(200, { publicKey: requestOptions() });
  server.answer["webauthn/login/"] = () => json(200, { user, ...server.pair(), device_token: "dev" });
  server.answer["reauth/webauthn/options/"] = () => json(200, { publicKey: requestOptions() });
  server.answer["reauth/"] = (call) =>
    json(200, { access: server.issue(bearerSid(call)), auth_time: server.time.seconds() });
  return server;
}

test("registerPasskey: options decoded to ArrayBuffers, the credential encoded back, its token kept", async (t) => {
  const device = authenticator(t);
  const server = passkeyServer();
  const tabs = browser(t, server);
  const [tab, other] = [await tabs.tab(), await tabs.tab()];
  await tab.login("ada", "right password");
  await waitFor(() => other.state.signedIn);
  const before = await tab.getAccessToken();

  const made = await tab.registerPasskey("Laptop");
  assert.deepEqual(made, { credential: passkey, recoveryCodes: ["aaaa-bbbb-cccc"] });

  const [[kind, { publicKey }]] = device.seen;
  assert.equal(kind, "create");
  assert.deepEqual(bytesOf(publicKey.challenge), [0xfb, 0xff]);
  assert.deepEqual(bytesOf(publicKey.user.id), [1, 2, 3]);
  assert.equal(publicKey.user.name, "ada");
  assert.deepEqual(publicKey.excludeCredentials.map((c) => [bytesOf(c.id), c.type, c.transports]),
    [[[4, 5, 6, 255], "public-key", ["usb"]]]);
  assert.deepEqual(publicKey.authenticatorSelection, creationOptions.authenticatorSelection);
  assert.equal(publicKey.rp.id, "localhost");

  const sent = server.calls.filter((c) => c.path.startsWith("webauthn/"));
  assert.deepEqual(sent.map((c) => [c.method, c.path, c.auth]), [
    ["POST", "webauthn/register/options/", "Bearer " + before],
    ["POST", "webauthn/register/", "Bearer " + before],
  ]);
  assert.deepEqual(sent[0].body, {});
  assert.deepEqual(sent[1].body, {
    name: "Laptop",
    credential: {
      id: "9_8", rawId: "9_8", type: "public-key", authenticatorAttachment: "platform",
      clientExtensionResults: {},
      response: { clientDataJSON: "e30", attestationObject: "owE", transports: ["internal", "hybrid"] },
    },
  });
  // The answer's access token (amr with "webauthn", a fresh auth_time) is the session's now.
  const after = await tab.getAccessToken();
  assert.notEqual(after, before);
  assert.equal(sidOf(after), sidOf(before));
  await waitFor(async () => (await other.getAccessToken()) == after);

  await tab.registerPasskey(); // no name: none sent
  assert.deepEqual(Object.keys(server.calls.at(-1).body), ["credential"]);
});

test("registerPasskey: a step-up refusal comes before any authenticator is asked", async (t) => {
  const device = authenticator(t);
  const server = passkeyServer();
  server.answer["webauthn/register/options/"] = () =>
    json(403, { detail: "Confirm it is you", code: "step_up_required", methods: ["password", "webauthn"] });
  const tab = await browser(t, server).tab();
  await tab.login("ada", "right password");
  const error = await tab.registerPasskey("Laptop").catch((e) => e);
  assert.ok(error instanceof AuthError);
  assert.deepEqual([error.status, error.code, error.methods], [403, "step_up_required", ["password", "webauthn"]]);
  assert.deepEqual(device.seen, []);
  assert.equal(tab.state.signedIn, true);
});

test("with the browser's own parse*OptionsFromJSON and toJSON(), those are what is used", async (t) => {
  const device = authenticator(t, { native: true });
  const server = passkeyServer();
  const tab = await browser(t, server).tab();
  await tab.login("ada", "right password");
  await tab.registerPasskey("Laptop");
  await tab.logout();
  await tab.signInWithPasskey();
  assert.deepEqual(device.seen.map(([kind, o]) => [kind, o.publicKey]), [
    ["create", { parsed: "creation", o: creationOptions }],
    ["get", { parsed: "request", o: requestOptions() }],
  ]);
  const posted = server.calls.filter((c) => ["webauthn/register/", "webauthn/login/"].includes(c.path));
  assert.deepEqual(posted.map((c) => c.body.credential), [{ id: "9_8", native: true }, { id: "9_8", native: true }]);
});

test("signInWithPasskey: no username, then signed in exactly as login() is, in every tab", async (t) => {
  const device = authenticator(t);
  const server = passkeyServer();
  const tabs = browser(t, server);
  const [tab, other] = [await tabs.tab(), await tabs.tab()];
  assert.deepEqual(await tab.signInWithPasskey(), user);
  assert.deepEqual(tab.state, { signedIn: true, user });
  await waitFor(() => other.state.signedIn);
  assert.equal(await other.getAccessToken(), await tab.getAccessToken());

  const [[, options]] = device.seen;
  assert.equal(options.mediation, undefined); // a button's modal request
  assert.equal(options.signal, undefined);
  assert.deepEqual(bytesOf(options.publicKey.challenge), [0xfb, 0xff]);
  assert.deepEqual(options.publicKey.allowCredentials, []);
  assert.equal(options.publicKey.userVerification, "required");
  const sent = server.calls.filter((c) => c.path.startsWith("webauthn/"));
  assert.deepEqual(sent.map((c) => [c.path, c.body, c.auth, c.credentials]), [
    ["webauthn/login/options/", {}, null, "same-origin"],
    ["webauthn/login/", {
      credential: {
        id: "9_8", rawId: "9_8", type: "public-key", authenticatorAttachment: "platform",
        clientExtensionResults: {},
        response: { clientDataJSON: "e30", authenticatorData: "SZY", signature: "MEU", userHandle: "AQID" },
      },
    }, null, "same-origin"],
  ]);
});

test("conditional: autofill's request, pending until the page aborts it; nobody signed in", async (t) => {
  const device = authenticator(t, { hold: true });
  const server = passkeyServer();
  const tab = await browser(t, server).tab();
  const autofill = new AbortController();
  const pending = tab.signInWithPasskey({ conditional: true, signal: autofill.signal }).catch((e) => e);
  await waitFor(() => device.seen.length == 1);
  const [[kind, options]] = device.seen;
  assert.deepEqual([kind, options.mediation, options.signal], ["get", "conditional", autofill.signal]);
  autofill.abort();
  const error = await pending;
  assert.ok(error instanceof AuthError);
  assert.deepEqual([error.status, error.code, error.reason], [0, "webauthn_refused", "AbortError"]);
  assert.equal(error.cause.name, "AbortError");
  assert.equal(tab.state.signedIn, false);
  assert.equal(server.count("webauthn/login/"), 0);

  // Then a button's request: the page aborted the first, as only one may be pending.
  device.hold = false;
  assert.deepEqual(await tab.signInWithPasskey(), user);
});

test("conditional where the browser has no passkey autofill: refused before any request", async (t) => {
  const device = authenticator(t, { conditional: false });
  const server = passkeyServer();
  const tab = await browser(t, server).tab();
  const error = await tab.signInWithPasskey({ conditional: true }).catch((e) => e);
  assert.deepEqual([error.status, error.code, error.reason], [0, "webauthn_refused", "NotSupportedError"]);
  assert.deepEqual(device.seen, []);
  assert.equal(server.calls.length, 0);
});

test("refusals: the user cancelling, no WebAuthn, the server refusing the assertion", async (t) => {
  const device = authenticator(t);
  const server = passkeyServer();
  const tab = await browser(t, server).tab();

  device.refuse = "NotAllowedError";
  const cancelled = await tab.signInWithPasskey().catch((e) => e);
  assert.ok(cancelled instanceof AuthError);
  assert.deepEqual([cancelled.status, cancelled.code, cancelled.reason, cancelled.message],
    [0, "webauthn_refused", "NotAllowedError", "refused"]);
  assert.equal(cancelled.cause.name, "NotAllowedError");
  assert.equal(server.count("webauthn/login/"), 0);
  device.refuse = null;

  server.answer["webauthn/login/"] = () =>
    json(401, { detail: "Passkey refused", code: "webauthn_failed", reason: "unknown_credential" });
  const wrong = await tab.signInWithPasskey().catch((e) => e);
  assert.deepEqual([wrong.status, wrong.code, wrong.reason], [401, "webauthn_failed", "unknown_credential"]);
  assert.equal(tab.state.signedIn, false);

  delete globalThis.navigator;
  const none = await tab.signInWithPasskey().catch((e) => e);
  assert.deepEqual([none.status, none.code, none.reason], [0, "webauthn_refused", "NotSupportedError"]);
  assert.equal(server.count("webauthn/login/options/"), 2, "without WebAuthn nothing is asked");
  delete globalThis.PublicKeyCredential; // an old browser: neither
  assert.equal((await tab.reauthenticate({ method: "webauthn" }).catch((e) => e)).reason, "NotSupportedError");
  assert.equal(server.calls.at(-1).path, "webauthn/login/", "nor here");
});

test("a passkey as the second factor: complete('webauthn') and completeWithPasskey()", async (t) => {
  const device = authenticator(t);
  const server = fakeServer();
  const live = new Set();
  server.answer["login/"] = () => {
    const token = "mfa-" + (live.size + 1);
    live.add(token);
    return json(200, { mfa_required: true, mfa_token: token, methods: ["webauthn", "totp", "recovery_code"] });
  };
  server.answer["login/mfa/webauthn/options/"] = ({ body }) => live.has(body.mfa_token)
    ? json(200, { publicKey: requestOptions([{ id: KEY_ID, type: "public-key", transports: ["usb"] }]) })
    : json(401, { detail: "Start again", code: "mfa_token_invalid" });
  let wrong = true;
  server.answer["login/mfa/"] = ({ body }) => {
    if (!live.has(body.mfa_token)) return json(401, { detail: "Start again", code: "mfa_token_invalid" });
    if (wrong) {
      wrong = false;
      return json(401, { detail: "Refused", code: "mfa_code_invalid", reason: "bad_signature" });
    }
    live.delete(body.mfa_token);
    return json(200, { user, ...server.pair(), device_token: "dev" });
  };
  const tabs = browser(t, server);
  const [tab, other] = [await tabs.tab(), await tabs.tab()];
  const step = await tab.login("ada", "right password").catch((e) => e);
  assert.ok(step instanceof MfaRequiredError);
  assert.deepEqual(step.methods, ["webauthn", "totp", "recovery_code"]);

  device.refuse = "NotAllowedError"; // the user closed the browser's prompt
  assert.equal((await step.complete("webauthn").catch((e) => e)).code, "webauthn_refused");
  device.refuse = null;
  const refused = await step.complete("webauthn").catch((e) => e);
  assert.deepEqual([refused.status, refused.code, refused.reason], [401, "mfa_code_invalid", "bad_signature"]);
  assert.equal(tab.state.signedIn, false);
  assert.deepEqual(await step.completeWithPasskey(), user); // the same step, tried again
  assert.deepEqual(tab.state, { signedIn: true, user });
  await waitFor(() => other.state.signedIn);

  // Each try asked for new options (a challenge is single use), with the account's keys.
  const gets = device.seen.map(([, o]) => o.publicKey.allowCredentials.map((c) => bytesOf(c.id)));
  assert.deepEqual(gets, [[[4, 5, 6, 255]], [[4, 5, 6, 255]], [[4, 5, 6, 255]]]);
  const sent = server.calls.filter((c) => c.path.startsWith("login/mfa/"));
  assert.deepEqual(sent.map((c) => [c.path, Object.keys(c.body).sort().join()]), [
    ["login/mfa/webauthn/options/", "mfa_token"],
    ["login/mfa/webauthn/options/", "mfa_token"],
    ["login/mfa/", "credential,method,mfa_token"],
    ["login/mfa/webauthn/options/", "mfa_token"],
    ["login/mfa/", "credential,method,mfa_token"],
  ]);
  assert.deepEqual(sent.at(-1).body, {
    mfa_token: "mfa-1", method: "webauthn",
    credential: {
      id: "9_8", rawId: "9_8", type: "public-key", authenticatorAttachment: "platform",
      clientExtensionResults: {},
      response: { clientDataJSON: "e30", authenticatorData: "SZY", signature: "MEU", userHandle: "AQID" },
    },
  });
  assert.ok(sent.every((c) => c.auth == null));
});

test("reauthenticate({method: 'webauthn'}): options with the Bearer token, then reauth/", async (t) => {
  const device = authenticator(t);
  const server = passkeyServer();
  const tab = await browser(t, server).tab();
  await tab.login("ada", "right password");
  const before = await tab.getAccessToken();
  assert.equal(await tab.reauthenticate({ method: "webauthn" }), undefined);
  const after = await tab.getAccessToken();
  assert.notEqual(after, before);
  assert.equal(sidOf(after), sidOf(before));
  assert.equal(device.seen.length, 1);
  const sent = server.calls.filter((c) => c.path.startsWith("reauth/"));
  assert.deepEqual(sent.map((c) => [c.path, c.auth]), [
    ["reauth/webauthn/options/", "Bearer " + before],
    ["reauth/", "Bearer " + before],
  ]);
  assert.deepEqual(sent[0].body, {});
  assert.equal(sent[1].body.method, "webauthn");
  assert.equal(sent[1].body.credential.response.signature, "MEU");
  await tab.reauthenticate({ password: "right password" }); // the others unchanged
  assert.deepEqual(server.calls.at(-1).body, { password: "right password" });
});

test("the passkeys' calls: paths, methods, bodies, token; ids escaped in the path", async (t) => {
  const server = fakeServer();
  server.answer["webauthn/credentials/"] = () => json(200, [passkey]);
  server.answer["webauthn/credentials/a%2Fb-_c/"] = ({ method, body }) =>
    method == "PATCH" ? json(200, { ...passkey, name: body.name }) : new Response(null, { status: 204 });
  server.answer["password/"] = () => new Response(null, { status: 204 });
  const tab = await browser(t, server).tab();
  await tab.login("ada", "right password");
  const token = "Bearer " + (await tab.getAccessToken());
  assert.deepEqual(await tab.listPasskeys(), [passkey]);
  assert.deepEqual(await tab.renamePasskey("a/b-_c", "Work"), { ...passkey, name: "Work" });
  assert.equal(await tab.deletePasskey("a/b-_c"), undefined);
  assert.equal(await tab.removePassword(), undefined);
  assert.deepEqual(server.calls.slice(1).map((c) => [c.method, c.path, c.body, c.auth]), [
    ["GET", "webauthn/credentials/", null, token],
    ["PATCH", "webauthn/credentials/a%2Fb-_c/", { name: "Work" }, token],
    ["DELETE", "webauthn/credentials/a%2Fb-_c/", null, token],
    ["DELETE", "password/", null, token],
  ]);

  server.answer["webauthn/credentials/a%2Fb-_c/"] = () =>
    json(400, { non_field_errors: ["This is the account's last way to sign in."] });
  const last = await tab.deletePasskey("a/b-_c").catch((e) => e);
  assert.deepEqual([last.status, last.fields], [400, { non_field_errors: ["This is the account's last way to sign in."] }]);
  assert.equal(last.message, "This is the account's last way to sign in.");
  assert.equal(tab.state.signedIn, true);
});
