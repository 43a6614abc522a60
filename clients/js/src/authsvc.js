// authsvc's browser client: one dependency-free ES module (see authsvc.d.ts and README.md).
// Browser globals are reached through globalThis so that the module also imports in Node.

const SERVED_AT = "/api/v1/client/authsvc.js";
// How long a new tab waits for another tab to answer "hello" before it calls itself signed out.
const HELLO_WAIT = 150;
// How long a tab that lost the refresh race waits for the winner's broadcast.
const RESULT_WAIT = 1000;
// Without Web Locks: how long a claim stays open for other tabs' counter-claims.
const CLAIM_WAIT = 60;

export class AuthError extends Error {
  constructor(status, body = null, retryAfter = null, message, cause) {
    const b = body && typeof body == "object" ? body : {};
    const fields = {};
    if (status == 400) {
      for (const k in b) if (k != "detail") fields[k] = [].concat(b[k]).map(String);
      // A 400 with no field (an unparseable body) is shown where forms show non-field errors.
      if (b.detail) (fields.non_field_errors ||= []).push(String(b.detail));
    }
    const first = Object.values(fields)[0];
    super(message || (typeof b.detail == "string" ? b.detail : first ? first[0] : "HTTP " + status),
      cause && { cause });
    this.name = "AuthError";
    this.status = status;
    this.code = b.code ?? null;
    this.reason = b.reason ?? null;
    this.fields = fields;
    this.retryAfter = retryAfter;
    this.methods = b.methods ?? null;
    this.body = body;
  }
}

// login() for an account with a second factor: not signed in yet; complete() sends the code
// (or, for "webauthn", asks the browser for the passkey's assertion).
export class MfaRequiredError extends AuthError {
  constructor(body, complete) {
    super(200, body, null, "A second factor is needed to sign in");
    this.name = "MfaRequiredError";
    this.code = "mfa_required";
    this.complete = complete;
    this.completeWithPasskey = () => complete("webauthn");
  }
}

// ---- WebAuthn: the API's JSON (binary fields in base64url, no padding) <-> the browser's
// ArrayBuffers. The browser's own PublicKeyCredential.parse*OptionsFromJSON and toJSON() when
// it has them, else these few lines.
const b64url = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
  .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const binary = (text) =>
  Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)).buffer;
const ids = (list) => list && list.map((c) => ({ ...c, id: binary(c.id) }));

function fromJSON(o) {
  const out = { ...o, challenge: binary(o.challenge) };
  if (o.user) out.user = { ...o.user, id: binary(o.user.id) };
  if (o.excludeCredentials) out.excludeCredentials = ids(o.excludeCredentials);
  if (o.allowCredentials) out.allowCredentials = ids(o.allowCredentials);
  return out;
}

function toJSON(c) {
  if (typeof c.toJSON == "function") return c.toJSON();
  const r = c.response;
  const response = { clientDataJSON: b64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = b64url(r.attestationObject);
    response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    response.authenticatorData = b64url(r.authenticatorData);
    response.signature = b64url(r.signature);
    if (r.userHandle) response.userHandle = b64url(r.userHandle);
  }
  const json = { id: c.id, rawId: b64url(c.rawId), type: c.type, response,
    clientExtensionResults: c.getClientExtensionResults ? c.getClientExtensionResults() : {} };
  if (c.authenticatorAttachment) json.authenticatorAttachment = c.authenticatorAttachment;
  return json;
}

// navigator.credentials.create() or .get() with the options the API answers `ask()` (asked only
// where the browser has WebAuthn): the credential as JSON. What the browser throws (the user
// cancelled, no passkey, an abort, no WebAuthn) rejects as an AuthError of status 0, code
// "webauthn_refused", reason the DOMException's name.
const refused = (e) => new AuthError(0, { detail: String(e?.message || e),
  code: "webauthn_refused", reason: e?.name || null }, null, undefined, e);
const unsupported = () => refused(new DOMException("This browser cannot use passkeys here",
  "NotSupportedError"));

async function ceremony(kind, ask, more) {
  const PKC = globalThis.PublicKeyCredential;
  const api = globalThis.navigator?.credentials;
  if (!api || !PKC) throw unsupported();
  const { publicKey } = await ask();
  const parse = kind == "create" ? "parseCreationOptionsFromJSON" : "parseRequestOptionsFromJSON";
  try {
    const options = PKC[parse] ? PKC[parse](publicKey) : fromJSON(publicKey);
    const credential = await api[kind]({ ...more, publicKey: options });
    if (!credential) throw new DOMException("No passkey was chosen", "NotAllowedError");
    return toJSON(credential);
  } catch (e) {
    throw refused(e);
  }
}

// The JWT payload is read for its times (when to refresh) and its session id (which pairs
// a session end applies to), never trusted for anything else.
function times(jwt) {
  try {
    const p = JSON.parse(atob(jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return [p.exp, p.iat, p.sid];
  } catch {
    return [];
  }
}

// The app's callbacks run inside the client's own work: one that throws is reported, and the
// tab's state is still updated.
function guarded(callback, value) {
  try {
    callback && callback(value);
  } catch (e) {
    (globalThis.reportError || console.error)(e);
  }
}

const same = (a, b) => JSON.stringify(a) == JSON.stringify(b);
const sidOf = (t) => times(t.access)[2];

function seconds(header) {
  if (!header) return null;
  const n = +header;
  return n >= 0 ? n : Math.max(0, Math.ceil((Date.parse(header) - Date.now()) / 1000)) || 0;
}

function defaultBase() {
  const url = new URL(import.meta.url);
  if (!url.pathname.endsWith(SERVED_AT)) {
    throw new TypeError("authsvc: createAuthClient needs options.baseUrl (e.g. " +
      "\"https://auth.example.com/api/v1/auth/\") unless the module is served by authsvc");
  }
  return url.origin + url.pathname.slice(0, -SERVED_AT.length) + "/api/v1/auth/";
}

function webStorage(kind, key) {
  let s;
  try {
    s = globalThis[kind + "Storage"];
  } catch {} // a sandboxed frame throws on access: keep tokens in memory only
  return s && {
    get: () => JSON.parse(s.getItem(key)),
    set: (t) => (t ? s.setItem(key, JSON.stringify(t)) : s.removeItem(key)),
  };
}

export function createAuthClient(options = {}) {
  const base = String(options.baseUrl || defaultBase()).replace(/\/?$/, "/");
  const name = options.channelName || "authsvc:" + base;
  const net = options.fetch || globalThis.fetch;
  const now = options.now || Date.now;
  const locks = options.locks === undefined ? globalThis.navigator?.locks : options.locks;
  const kind = options.storage || "memory";
  const store = typeof kind == "object" ? kind : kind != "memory" && webStorage(kind, name);
  const trusted = new Set([new URL(base).origin, globalThis.location?.origin,
    ...(options.tokenOrigins || []).map((o) => new URL(o).origin)]);
  const Channel = globalThis.BroadcastChannel;
  const channel = Channel && new Channel(name);
  const listeners = new Set();
  const waiters = new Set();

  let tokens = null; // {access, refresh}
  let user = null;
  // Pairs are numbered across tabs (each new pair from the server is one more than the newest
  // the tab has seen), so a message that crossed a newer one is known to be older: exp cannot
  // tell, two pairs minted in one second have the same.
  let version = 0;
  let refreshAt = 0; // seconds
  let expiresAt = 0;
  let timer;
  let retryWait = 0; // ms until a failed refresh is asked again (doubling)
  let inflight = null;
  let ended = null; // why the last session ended
  let endings = 0; // sessions ended so far: a refresh answer from before one is dropped
  // Sessions this tab knows have ended: a pair of one of them, from a tab that had not heard
  // yet (its refresh answered as another tab signed out), never signs this tab back in.
  const over = new Set();
  // Seconds the server's clock is ahead of this tab's, learnt from the `iat` of each pair the
  // server issues: `exp` is the server's time, and a tab whose clock is ahead by more than a
  // token's lifetime would otherwise see every new token as due and refresh in a loop. null:
  // not known yet (this tab has had no pair from the server nor from a tab that had one).
  let skew = null;
  let claim = null; // this tab's open claim to refresh, when there are no Web Locks
  let state = { signedIn: false, user: null };

  const post = (m) => channel && channel.postMessage(m);
  const nowS = () => now() / 1000 + (skew ?? 0);

  // A pair the server has just issued: its `iat` is the server's now, in whole seconds; taken
  // as the end of that second, so the estimate errs by under a second towards refreshing early.
  function issued(t) {
    const iat = times(t.access)[1];
    if (typeof iat == "number") skew = iat + 1 - now() / 1000;
    return t;
  }

  function persist() {
    // Storage is best effort: a full or refusing store must not break the signed-in tab.
    (async () => store && store.set(tokens && { ...tokens, user, v: version, skew }))()
      .catch(() => {});
  }

  function emit() {
    const next = { signedIn: !!tokens, user: tokens ? user : null };
    if (next.signedIn != state.signedIn || !same(next.user, state.user)) {
      state = next;
      for (const l of listeners) guarded(l, state);
    }
  }

  function changed() {
    for (const w of waiters) w();
    emit();
  }

  // Resolves when the access token is no longer `before`, or after `ms`.
  function until(before, ms) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      waiters.add(done);
      if (tokens?.access != before) done();
    });
  }

  // A refresh that failed on its way (network, 5xx, 429) is asked again soon, then less often:
  // with rotation on, the server may have rotated the token and only its answer was lost, and
  // it gives the same successor again only within rotation_grace (10 s by default); after
  // that, the replaced token presented is reuse, and the session ends as theft.
  function retry(before, after) {
    retryWait = Math.min(retryWait * 2 || 500, 60_000);
    clearTimeout(timer);
    // (a delay over setTimeout's 2^31-1 ms would fire at once)
    timer = setTimeout(() => refreshFrom(before).catch(() => {}),
      Math.min(2 ** 31 - 1, after ? after * 1000 : retryWait));
  }

  function schedule() {
    clearTimeout(timer);
    retryWait = 0;
    if (!tokens) return;
    const [exp, iat] = times(tokens.access);
    expiresAt = exp || Infinity;
    const margin = Math.min(options.refreshMargin ?? 30, (exp - (iat || nowS())) / 4);
    refreshAt = expiresAt - margin;
    if (exp) {
      const before = tokens.access;
      timer = setTimeout(() => refreshFrom(before).catch(() => {}),
        Math.min(2 ** 31 - 1, (refreshAt - nowS()) * 1000));
    }
  }

  // Takes a pair (and user) from this tab's work, another tab or storage. An older pair never
  // replaces a newer one; of two pairs of one number (two tabs that refreshed at once), the
  // tab keeps its own.
  function adopt(t, u, v = 0) {
    if (!t || !t.access || !t.refresh || over.has(sidOf(t))) return;
    if (v < version || (v == version && tokens && t.access != tokens.access)) return;
    if (t.access == tokens?.access && (u === undefined || same(u, user))) return;
    const renewed = t.access != tokens?.access;
    version = v;
    tokens = { access: t.access, refresh: t.refresh };
    if (u !== undefined) user = u;
    if (renewed) schedule();
    persist();
    changed();
    return true;
  }

  // A new pair from the server (or the same pair with a new user) to this tab and the others.
  // A sign-in's or password change's number is the time, in ms: it outnumbers every pair
  // before it in any tab, also one that counted further than this tab (a tab opened after a
  // sign-out starts from 0), or that refreshed with the old password as it was changed.
  function share(t, u, fresh) {
    const v = fresh ? Math.max(version + 1, Date.now())
      : t.access == tokens?.access ? version : version + 1;
    if (adopt(t, u, v)) {
      post({ t: "state", tokens, user, v: version, skew });
    }
  }

  function end(reason, fromOtherTab) {
    ended = reason;
    if (!tokens) return;
    const sid = sidOf(tokens);
    if (sid != null) over.add(sid);
    endings++;
    if (!fromOtherTab) post({ t: "end", reason, v: version, sid });
    tokens = user = null;
    clearTimeout(timer);
    persist();
    changed();
    guarded(options.onSessionEnd, reason);
  }

  const endedError = () =>
    new AuthError(401, { detail: "Session ended", code: "token_not_valid", reason: ended });
  const signedOutError = () =>
    new AuthError(401, { detail: "Not signed in", code: "not_authenticated" });

  if (channel) {
    channel.onmessage = ({ data: m }) => {
      if (m.t == "hello") tokens && post({ t: "state", tokens, user, v: version, skew });
      else if (m.t == "state") {
        if (typeof m.skew == "number" && skew == null) skew = m.skew;
        adopt(m.tokens, m.user, m.v);
      }
      // A session's end ends its pairs, also one newer than the ending tab's (a refresh
      // answered as it signed out), and leaves another session (a newer sign-in) alone.
      else if (m.t == "end") {
        const mine = tokens && sidOf(tokens);
        if (m.sid != null) over.add(m.sid);
        if (m.sid != null && mine != null ? m.sid == mine : m.v >= version) end(m.reason, true);
      }
      else if (m.t == "claim" && claim && claim.before == m.before) {
        // The lowest claim wins. A claim that may have missed ours (sent before this tab
        // claimed) is answered with ours; a tab already refreshing answers with one that beats
        // any, so the latecomer waits for its result.
        if (m.id < claim.id) claim.lost = true;
        else if (!claim.lost && m.id >= 0) {
          post({ t: "claim", before: m.before, id: claim.won ? -1 : claim.id });
        }
      }
    };
    post({ t: "hello" });
  }

  const ready = (async () => {
    try {
      if (store) {
        const t = await store.get();
        if (t && typeof t.skew == "number" && skew == null) skew = t.skew;
        if (t && (times(t.refresh)[0] || Infinity) > nowS()) adopt(t, t.user ?? null, t.v);
      }
    } catch {} // unreadable storage is an empty one
    // A stored pair due for refresh may be one another tab has replaced since (a restored
    // or duplicated tab): with rotation on, refreshing with it would be reuse, so the open
    // tabs' answer is awaited first, as with no pair at all.
    if (channel && (!tokens || nowS() >= refreshAt)) await until(tokens?.access, HELLO_WAIT);
  })();

  async function send(path, method, body, token) {
    const headers = {};
    if (body) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    return request(base + path, {
      method, headers, body: body && JSON.stringify(body), credentials: "same-origin",
    });
  }

  async function request(input, init) {
    try {
      return await net(input, init);
    } catch (e) {
      // `cause` keeps what fetch() threw, e.g. the app's own AbortError.
      throw new AuthError(0, null, null, "Network error: " + (e && e.message || e), e);
    }
  }

  async function parse(res) {
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = text; // e.g. a proxy's HTML error page
    }
    if (!res.ok) throw new AuthError(res.status, body, seconds(res.headers.get("Retry-After")));
    return body;
  }

  // The refresh itself, done by one tab only (the caller holds the lock or won the claim):
  // skipped when another tab's broadcast has already replaced `before`. An answer that
  // arrives after the session ended (a sign-out while it was on the wire) is dropped: it must
  // not sign the tabs back in.
  async function refreshIfStill(before) {
    if (!tokens || tokens.access != before) return;
    const epoch = endings;
    const { refresh } = tokens;
    try {
      const r = await parse(await send("token/refresh/", "POST", { refresh }));
      if (endings != epoch) throw endedError();
      share(issued({ access: r.access, refresh: r.refresh || refresh }));
    } catch (e) {
      if (e.status == 401 && endings == epoch) {
        if (await replaced(before, e.reason)) return true;
        if (endings == epoch) end(e.reason || e.code || "session_ended");
      } else if ((!e.status || e.status == 429 || e.status >= 500) && tokens?.access == before) {
        retry(before, e.retryAfter);
      }
      throw e;
    }
    return true;
  }

  // Whether a token refused as password_changed is being replaced by this browser's own
  // change: the server refuses every token of the old password before the change's answer
  // (the new pair of the same session) arrives, so a request or refresh of any tab refused
  // then waits for that pair rather than ending the session.
  async function replaced(before, reason) {
    if (reason != "password_changed") return false;
    await until(before, RESULT_WAIT);
    return !!tokens && tokens.access != before && sidOf(tokens) == times(before)[2];
  }

  async function withLocks(before) {
    const done = await locks.request(name, { ifAvailable: true },
      (lock) => lock && refreshIfStill(before).then(() => true));
    if (done) return;
    await locks.request(name, () => {}); // the holder has refreshed and broadcast
    await until(before, RESULT_WAIT); // its message may arrive after its lock was released
    await locks.request(name, () => refreshIfStill(before));
  }

  async function withClaims(before) {
    const mine = (claim = { before, id: Math.random() });
    try {
      post({ t: "claim", before, id: mine.id });
      await new Promise((r) => setTimeout(r, CLAIM_WAIT));
      if (mine.lost) await until(before, RESULT_WAIT * 3);
      mine.won = true;
      await refreshIfStill(before);
    } finally {
      claim = null;
    }
  }

  function refreshFrom(before) {
    return (inflight ||= (async () => {
      try {
        await ready;
        if (tokens && channel) await (locks ? withLocks : withClaims)(before);
        else await refreshIfStill(before);
        if (!tokens) throw endedError();
        return tokens.access;
      } finally {
        inflight = null;
      }
    })());
  }

  async function getAccessToken() {
    await ready;
    if (tokens && nowS() >= refreshAt) {
      try {
        return await refreshFrom(tokens.access);
      } catch (e) {
        if (tokens && nowS() < expiresAt) return tokens.access; // still valid: try again later
        throw e;
      }
    }
    return tokens ? tokens.access : null;
  }

  // Sends with the access token; on a 401 token_expired refreshes once and retries once (with
  // the tab's newer token if it has one by then); any other refusal of the token ends the
  // session in every tab.
  async function authorized(sendWith) {
    let token = await getAccessToken();
    for (let retried = 0; ; retried++) {
      const res = await sendWith(token);
      if (res.status != 401 || !token) return res;
      const b = await res.clone().json().catch(() => ({}));
      if (b.code != "token_not_valid") return res;
      if (!retried && (await replaced(token, b.reason))) token = tokens.access;
      else if (b.reason != "token_expired" || retried) {
        if (tokens?.access == token) end(b.reason || "session_ended");
        return res;
      } else token = await refreshFrom(token);
    }
  }

  const call = async (path, body, method = "POST") => parse(await send(path, method, body));
  const bearer = async (path, body, method = "POST") =>
    parse(await authorized((token) => send(path, method, body, token)));

  function signedIn(r) {
    if (r.access) share(issued({ access: r.access, refresh: r.refresh }), r.user || null, true);
    return r;
  }

  // A new access token of this session (re-authentication, a confirmed factor): the current one.
  function current(r) {
    if (tokens) share(issued({ access: r.access, refresh: r.refresh || tokens.refresh }));
    return r;
  }

  const passkey = (id) => "webauthn/credentials/" + encodeURIComponent(id) + "/";
  const getProfile = async () => profile(await bearer("profile/", null, "GET"));

  function profile(p) {
    const { username, email, display_name } = p;
    if (tokens) share(tokens, { ...user, username, email, display_name });
    return p;
  }

  return {
    ready,
    get state() {
      return state;
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    async register(input) {
      const body = { ...input, password2: input.password2 ?? input.password };
      const r = signedIn(await call("register/", body));
      return { user: r.user, signedIn: !!r.access };
    },
    async login(usernameOrEmail, password) {
      const r = await call("login/", { username_or_email: usernameOrEmail, password });
      if (r.mfa_required) {
        const { mfa_token } = r;
        throw new MfaRequiredError(r, async (method, code) => {
          const body = { mfa_token, method };
          if (method == "webauthn") {
            body.credential = await ceremony("get", () => call("login/mfa/webauthn/options/", { mfa_token }));
          } else body.code = code;
          return signedIn(await call("login/mfa/", body)).user;
        });
      }
      return signedIn(r).user;
    },
    async signInWithPasskey({ conditional = false, signal } = {}) {
      // Autofill where the browser has none would be a modal request the user never asked for.
      if (conditional && !(await globalThis.PublicKeyCredential?.isConditionalMediationAvailable?.())) {
        throw unsupported();
      }
      const credential = await ceremony("get", () => call("webauthn/login/options/", {}),
        { signal, mediation: conditional ? "conditional" : undefined });
      return signedIn(await call("webauthn/login/", { credential })).user;
    },
    async logout() {
      await ready;
      if (tokens) await call("logout/", { refresh_token: tokens.refresh }).catch(() => {});
      end("signed_out");
    },
    async logoutAll() {
      await bearer("logout-all/");
      end("signed_out");
    },
    refresh: async () => {
      await ready;
      if (!tokens) throw signedOutError();
      return refreshFrom(tokens.access);
    },
    getAccessToken,

    getProfile,
    updateProfile: async (changes) => profile(await bearer("profile/", changes, "PATCH")),
    async changePassword(oldPassword, password, password2 = password) {
      const r = await bearer("password/change/", { old_password: oldPassword, password, password2 });
      share(issued(r), undefined, true);
    },
    async deleteAccount(password) {
      await bearer("profile/", { password }, "DELETE");
      end("account_deleted");
    },

    requestPasswordReset: async (email) => void (await call("password-reset/", { email })),
    confirmPasswordReset: async (token, password, password2 = password) =>
      void (await call("password-reset/confirm/", { token, password, password2 })),
    verifyEmail: async (token) => void (await call("verify-email/", { token })),
    resendVerification: async (email) => void (await call("verify-email/resend/", { email })),
    notMe: async (token) => void (await call("security/not-me/", { token })),

    async reauthenticate(input) {
      if (input.method == "webauthn") {
        input = { method: "webauthn", credential: await ceremony("get", () => bearer("reauth/webauthn/options/", {})) };
      }
      current(await bearer("reauth/", input));
    },
    mfaStatus: () => bearer("mfa/", null, "GET"),
    enrolTotp: () => bearer("mfa/totp/", {}),
    confirmTotp: async (code) => current(await bearer("mfa/totp/confirm/", { code })).recovery_codes,
    disableTotp: async () => void (await bearer("mfa/totp/", null, "DELETE")),
    regenerateRecoveryCodes: async () => (await bearer("mfa/recovery-codes/", {})).recovery_codes,

    async registerPasskey(name) {
      const credential = await ceremony("create", () => bearer("webauthn/register/options/", {}));
      const r = current(await bearer("webauthn/register/", name ? { credential, name } : { credential }));
      return { credential: r.credential, recoveryCodes: r.recovery_codes || [] };
    },
    listPasskeys: () => bearer("webauthn/credentials/", null, "GET"),
    renamePasskey: (id, name) => bearer(passkey(id), { name }, "PATCH"),
    deletePasskey: async (id) => void (await bearer(passkey(id), null, "DELETE")),
    removePassword: async () => void (await bearer("password/", null, "DELETE")),

    listSessions: () => bearer("sessions/", null, "GET"),
    revokeSession: async (id) =>
      void (await bearer("sessions/" + encodeURIComponent(id) + "/", null, "DELETE")),

    fetch(input, init) {
      const req = new Request(input, init);
      // The token goes only where it is meant to: anywhere else it would be given away, and a
      // stranger's 401 would end the session in every tab.
      if (!trusted.has(new URL(req.url).origin)) return request(req);
      return authorized((token) => {
        const r = req.clone(); // the body of a request can be sent once; the retry needs its own
        if (token) r.headers.set("Authorization", "Bearer " + token);
        return request(r);
      });
    },

    async requireAuth(opts = {}) {
      await ready;
      try {
        if (tokens) return await getProfile();
      } catch (e) {
        if (e.status != 401) throw e;
      }
      if (opts.redirectTo && globalThis.location) {
        location.assign(opts.redirectTo.replace("{next}", encodeURIComponent(location.href)));
        return new Promise(() => {});
      }
      throw signedOutError();
    },

    close() {
      clearTimeout(timer);
      channel && channel.close();
    },
  };
}
