// authsvc's browser client: the contract of ../../../shared/API.md (and the service's OpenAPI
// document) as typed calls, with refresh, cross-tab state and errors handled once.

/** The token pair of one session. */
export interface Tokens {
  access: string;
  refresh: string;
}

/** Where a tab keeps its tokens between page loads; tabs of one origin always share them
 * over BroadcastChannel whatever the storage. */
export interface TokenStorage {
  get(): Tokens | null | Promise<Tokens | null>;
  set(tokens: Tokens | null): void | Promise<void>;
}

export interface User {
  username: string;
  email: string;
  display_name?: string;
}

export interface Profile {
  username: string;
  email: string;
  display_name: string;
  role: string;
}

export interface Session {
  id: string;
  created: string;
  last_used: string;
  user_agent: string;
  ip: string;
  /** true for the session of this browser */
  current: boolean;
}

/** Why a session ended: the API's `reason` (`session_ended`, `password_changed`,
 * `token_reused`, `token_expired`, `user_inactive`, ...), or the client's own `signed_out`
 * (logout in this or another tab) and `account_deleted`. */
export type EndReason = string;

export interface AuthState {
  signedIn: boolean;
  /** the user as login/ or register/ returned it; null when signed out or not known */
  user: User | null;
}

export interface AuthClientOptions {
  /** The API's auth base, e.g. "https://auth.example.com/api/v1/auth/". Default: derived from
   * the module's own URL when it is served by authsvc (/api/v1/client/authsvc.js), else
   * required. */
  baseUrl?: string | URL;
  /** "memory" (default: tokens live only in the tabs' memory), "session", "local", or your own. */
  storage?: "memory" | "session" | "local" | TokenStorage;
  /** BroadcastChannel and Web Lock name; one per API. Default "authsvc:" + baseUrl. */
  channelName?: string;
  /** Refresh this many seconds before the access token's `exp` (default 30, at most a quarter
   * of the token's life). */
  refreshMargin?: number;
  /** Called in every tab of the origin when the session ends, with why. */
  onSessionEnd?: (reason: EndReason) => void;
  /** Origins besides the page's and the API's to which fetch() attaches the access token
   * (your API on another host, e.g. "https://api.example.com"). Default none. */
  tokenOrigins?: string[];
  /** For tests and non-browser runtimes. */
  fetch?: typeof fetch;
  now?: () => number;
  locks?: LockManager | null;
}

/** Every failed call rejects with one of these, never with a bare Response. */
export class AuthError extends Error {
  /** HTTP status; 0 when the server could not be reached. */
  readonly status: number;
  /** the API's `code` (`token_not_valid`, `not_authenticated`, `no_active_account`, ...).
   * Second factor: `step_up_required` (403: the action needs a recent sign-in; call
   * `reauthenticate()` with one of `methods`, then retry), `mfa_enrolment_required` (403: the
   * account's role needs a second factor set up first), `mfa_code_invalid` and
   * `mfa_token_invalid` (401 from `MfaRequiredError.complete()`). Passkeys: `webauthn_refused`
   * (status 0: the browser or authenticator said no; `reason` is the DOMException's name:
   * `NotAllowedError` when the user cancelled, timed out or has no passkey here, `AbortError`
   * for your own `signal`, `InvalidStateError` when the authenticator already holds one of the
   * account's passkeys, `NotSupportedError` without WebAuthn or autofill; `cause` is the
   * DOMException) and `webauthn_failed` (401 from `signInWithPasskey()`: the server refused the
   * assertion, `reason` says why, e.g. `unknown_credential`, `challenge_invalid`). */
  readonly code: string | null;
  /** the API's finer `reason` on token refusals (`token_expired`, `session_ended`, ...) */
  readonly reason: string | null;
  /** DRF-shaped field messages on a 400: {"password": ["..."], "non_field_errors": [...]} */
  readonly fields: Record<string, string[]>;
  /** seconds from Retry-After on a 429, else null */
  readonly retryAfter: number | null;
  /** the API's `methods`: on `step_up_required`, the ways to re-authenticate */
  readonly methods: StepUpMethod[] | null;
  /** the parsed response body, if any */
  readonly body: unknown;
}

/** A second factor; "webauthn" is a passkey or security key. */
export type MfaMethod = "totp" | "recovery_code" | "webauthn";
/** A way to re-authenticate (`reauthenticate()`). */
export type StepUpMethod = "password" | MfaMethod;

/** What login() rejects with when the account has a second factor: nobody is signed in yet.
 * `complete()` sends the code (once per try: a wrong one rejects with `mfa_code_invalid` and
 * may be tried again; `mfa_token_invalid` means start again with login()); it then signs in
 * exactly as login() does and resolves with the user. */
export class MfaRequiredError extends AuthError {
  /** status: 200, the login/ answer's */
  readonly code: "mfa_required";
  /** the factors the account can use now (`recovery_code` only while unused ones remain) */
  readonly methods: MfaMethod[];
  /** "totp" or "recovery_code" with the code the user typed; "webauthn" with no code: asks the
   * browser for one of the account's passkeys or security keys (login/mfa/webauthn/options/),
   * then sends its assertion. A refused assertion rejects with `mfa_code_invalid`; one the
   * browser did not make (cancelled) with `webauthn_refused`; either may be tried again. */
  complete(method: "totp" | "recovery_code", code: string): Promise<User>;
  complete(method: "webauthn", code?: undefined): Promise<User>;
  /** complete("webauthn") */
  completeWithPasskey(): Promise<User>;
}

/** GET mfa/ */
export interface MfaStatus {
  methods: MfaMethod[];
  /** how many passkeys and security keys the account has */
  webauthn: { credentials: number };
  /** false once removePassword() made the account passwordless (a reset by email sets one) */
  has_password: boolean;
  totp: { enabled: boolean; pending: boolean; confirmed_at: string | null };
  recovery_codes_left: number;
  /** the account's role needs a second factor, and it has none yet */
  enrolment_required: boolean;
  /** seconds a sign-in or re-authentication counts as recent for step-up */
  step_up_max_age: number;
}

/** A TOTP enrolment started: show `qr_svg` (an SVG document) or `secret`, then confirmTotp(). */
export interface TotpEnrolment {
  /** base32, for entering by hand */
  secret: string;
  otpauth_uri: string;
  qr_svg: string;
}

export type ReauthInput =
  | { password: string }
  | { method: "totp" | "recovery_code"; code: string }
  /** asks the browser for one of the account's passkeys (reauth/webauthn/options/) */
  | { method: "webauthn" };

/** A passkey or security key of the account (webauthn/credentials/). */
export interface Passkey {
  /** the credential id, base64url */
  id: string;
  name: string;
  /** RFC 3339 */
  created: string;
  last_used: string | null;
  transports: string[];
  /** the authenticator may sync it to the user's other devices */
  backup_eligible: boolean;
  /** it is synced (backed up) now */
  backup_state: boolean;
  /** a discoverable credential: signs in without a username; null when not known */
  discoverable: boolean | null;
}

export interface SignInWithPasskeyOptions {
  /** Browser autofill (mediation "conditional"): resolves only when the user picks a passkey in
   * the username field's suggestions (an input with autocomplete="username webauthn"); start it
   * on page load and abort it (`signal`) before any other sign-in. Rejects with
   * `webauthn_refused` / `NotSupportedError` where the browser has no autofill for passkeys. */
  conditional?: boolean;
  signal?: AbortSignal;
}

export interface RegisterInput {
  username: string;
  email: string;
  password: string;
  /** defaults to `password` */
  password2?: string;
  display_name?: string;
  role?: string;
}

export interface RequireAuthOptions {
  /** Where to send a signed-out visitor; `{next}` is replaced by the current URL, encoded. */
  redirectTo?: string;
}

export interface AuthClient {
  /** Resolves once the tab has asked the others (and storage) for a session. */
  readonly ready: Promise<void>;
  readonly state: AuthState;
  /** Called on every change of state, in this tab; returns an unsubscribe function. */
  subscribe(listener: (state: AuthState) => void): () => void;

  register(input: RegisterInput): Promise<{ user: User; signedIn: boolean }>;
  /** Rejects with an MfaRequiredError when the account has a second factor. */
  login(usernameOrEmail: string, password: string): Promise<User>;
  /** Signs in with a passkey, no username: the browser offers the site's passkeys (a button's
   * modal request, or autofill with `conditional`); then signed in exactly as login() does. */
  signInWithPasskey(options?: SignInWithPasskeyOptions): Promise<User>;
  /** Ends this session on the server and signs every tab out. */
  logout(): Promise<void>;
  /** Ends every session of the user, here and on other devices. */
  logoutAll(): Promise<void>;
  /** A fresh access token now (one refresh per browser, however many tabs ask). */
  refresh(): Promise<string>;
  /** The access token, refreshed first if it is about to expire; null when signed out. */
  getAccessToken(): Promise<string | null>;

  getProfile(): Promise<Profile>;
  updateProfile(changes: { display_name?: string }): Promise<Profile>;
  changePassword(oldPassword: string, newPassword: string, newPassword2?: string): Promise<void>;
  deleteAccount(password: string): Promise<void>;

  requestPasswordReset(email: string): Promise<void>;
  confirmPasswordReset(token: string, password: string, password2?: string): Promise<void>;
  verifyEmail(token: string): Promise<void>;
  resendVerification(email: string): Promise<void>;
  /** "This wasn't me": ends every session of the account and mails a reset link. */
  notMe(token: string): Promise<void>;

  /** Proves it is still the user (password, or a second factor), for actions that need a
   * recent sign-in (`step_up_required`); the new access token becomes this session's. */
  reauthenticate(input: ReauthInput): Promise<void>;
  mfaStatus(): Promise<MfaStatus>;
  /** Starts (or restarts) a TOTP enrolment; may reject with `step_up_required`. */
  enrolTotp(): Promise<TotpEnrolment>;
  /** Confirms the enrolment with a code from the app; resolves with the recovery codes (show
   * them once: [] when an authenticator was replaced). The new access token becomes this
   * session's. */
  confirmTotp(code: string): Promise<string[]>;
  /** Removes TOTP and the recovery codes (step-up). */
  disableTotp(): Promise<void>;
  /** A new set of 10 recovery codes; the old set stops working (step-up). */
  regenerateRecoveryCodes(): Promise<string[]>;

  /** Makes a passkey (or security key) for the account with navigator.credentials.create()
   * (needs a recent sign-in: `step_up_required`); resolves with it and, for the account's
   * first factor, its 10 recovery codes to show once ([] otherwise). The new access token
   * becomes this session's. */
  registerPasskey(name?: string): Promise<{ credential: Passkey; recoveryCodes: string[] }>;
  listPasskeys(): Promise<Passkey[]>;
  renamePasskey(id: string, name: string): Promise<Passkey>;
  /** (step-up) A 400 (`fields.non_field_errors`) when it is the last way a passwordless
   * account signs in. */
  deletePasskey(id: string): Promise<void>;
  /** Makes the account passwordless (step-up): allowed with two passkeys, or one and unused
   * recovery codes, else a 400 saying so. */
  removePassword(): Promise<void>;

  listSessions(): Promise<Session[]>;
  revokeSession(id: string): Promise<void>;

  /** fetch() with the access token attached (refreshed once on a 401 token_expired): for the
   * app's own API, which checks the same tokens. Only requests to the page's origin, the
   * API's and `tokenOrigins` carry the token; any other goes out as a plain fetch(), and its
   * 401 never ends the session. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;

  /** The profile of the signed-in user; when signed out, redirects to `redirectTo` (and never
   * resolves) or, without it, rejects with an AuthError of status 401. */
  requireAuth(options?: RequireAuthOptions): Promise<Profile>;

  /** Stops timers and closes the channel. */
  close(): void;
}

export function createAuthClient(options?: AuthClientOptions): AuthClient;
