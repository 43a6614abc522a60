// Type-checked only (npm run typecheck): an app using every part of the interface, through
// the package's exports. A declaration that is wrong or missing fails tsc here.
import { AuthError, createAuthClient, MfaRequiredError } from "@authsvc/client";
import type {
  AuthClient, AuthClientOptions, AuthState, EndReason, MfaMethod, MfaStatus, Passkey, Profile,
  ReauthInput, Session, SignInWithPasskeyOptions, StepUpMethod, Tokens, TokenStorage, TotpEnrolment,
  User,
} from "@authsvc/client";

const storage: TokenStorage = {
  get: async (): Promise<Tokens | null> => null,
  set: (tokens: Tokens | null): void => void tokens,
};
const options: AuthClientOptions = {
  baseUrl: new URL("https://auth.example.com/api/v1/auth/"),
  storage,
  channelName: "authsvc:example",
  refreshMargin: 30,
  tokenOrigins: ["https://api.example.com"],
  onSessionEnd: (reason: EndReason) => console.log(reason),
  fetch: globalThis.fetch,
  now: Date.now,
  locks: null,
};
for (const kind of ["memory", "session", "local"] as const) createAuthClient({ baseUrl: "/api/v1/auth/", storage: kind });
const auth: AuthClient = createAuthClient(options);
createAuthClient();

export async function app(): Promise<void> {
  await auth.ready;
  const state: AuthState = auth.state;
  const unsubscribe: () => void = auth.subscribe((s: AuthState) => console.log(s.signedIn, s.user?.username));
  unsubscribe();
  console.log(state.signedIn);

  const registered: { user: User; signedIn: boolean } = await auth.register({
    username: "ada", email: "ada@example.com", password: "correct horse", password2: "correct horse",
    display_name: "Ada", role: "user",
  });
  await auth.register({ username: "ada", email: "ada@example.com", password: "correct horse" });
  const user: User = await auth.login("ada", "correct horse");
  console.log(registered.signedIn, user.email, user.display_name);
  const access: string = await auth.refresh();
  const maybe: string | null = await auth.getAccessToken();
  console.log(access, maybe);

  const profile: Profile = await auth.getProfile();
  const updated: Profile = await auth.updateProfile({ display_name: "Ada L." });
  await auth.updateProfile({});
  console.log(profile.role, updated.display_name);
  await auth.changePassword("old", "new password");
  await auth.changePassword("old", "new password", "new password");
  await auth.requestPasswordReset("ada@example.com");
  await auth.confirmPasswordReset("token", "new password");
  await auth.confirmPasswordReset("token", "new password", "new password");
  await auth.verifyEmail("token");
  await auth.resendVerification("ada@example.com");
  await auth.notMe("token");

  const sessions: Session[] = await auth.listSessions();
  for (const s of sessions) if (!s.current) await auth.revokeSession(s.id);
  console.log(sessions.map((s) => [s.created, s.last_used, s.user_agent, s.ip]));

  const res: Response = await auth.fetch("/api/orders", { method: "POST", body: "{}" });
  await auth.fetch(new URL("https://app.example.com/api/orders"));
  await auth.fetch(new Request("/api/orders"));
  console.log(res.status);

  const guarded: Profile = await auth.requireAuth({ redirectTo: "/auth/signin?next={next}" });
  await auth.requireAuth();
  console.log(guarded.username);

  try {
    await auth.login("ada", "wrong");
  } catch (e) {
    if (e instanceof AuthError) {
      const status: number = e.status;
      const code: string | null = e.code;
      const reason: string | null = e.reason;
      const fields: Record<string, string[]> = e.fields;
      const retryAfter: number | null = e.retryAfter;
      const body: unknown = e.body;
      const message: string = e.message;
      console.log(status, code, reason, fields.password?.[0], retryAfter, body, message);
    }
  }
  try {
    await auth.login("ada", "correct horse");
  } catch (e) {
    if (e instanceof MfaRequiredError) {
      const code: "mfa_required" = e.code;
      const methods: MfaMethod[] = e.methods;
      const signedIn: User = await e.complete(methods.includes("totp") ? "totp" : "recovery_code", "123456");
      console.log(code, signedIn.username, e.status, e instanceof AuthError);
      if (methods.includes("webauthn")) {
        await e.complete("webauthn");
        const again: User = await e.completeWithPasskey();
        console.log(again.email);
      }
    }
  }
  const autofill = new AbortController();
  const passkeyOptions: SignInWithPasskeyOptions = { conditional: true, signal: autofill.signal };
  const byPasskey: User = await auth.signInWithPasskey(passkeyOptions);
  await auth.signInWithPasskey();
  autofill.abort();
  console.log(byPasskey.username);
  const made: { credential: Passkey; recoveryCodes: string[] } = await auth.registerPasskey("Laptop");
  await auth.registerPasskey();
  const keys: Passkey[] = await auth.listPasskeys();
  for (const k of keys) {
    console.log(k.id, k.name, k.created, k.last_used, k.transports, k.backup_eligible,
      k.backup_state, k.discoverable);
  }
  const renamed: Passkey = await auth.renamePasskey(made.credential.id, "Work laptop");
  await auth.deletePasskey(renamed.id);
  await auth.removePassword();
  await auth.reauthenticate({ method: "webauthn" });
  console.log(made.recoveryCodes.length);
  const mfa: MfaStatus = await auth.mfaStatus();
  console.log(mfa.methods, mfa.totp.enabled, mfa.totp.pending, mfa.totp.confirmed_at,
    mfa.recovery_codes_left, mfa.enrolment_required, mfa.step_up_max_age,
    mfa.webauthn.credentials, mfa.has_password);
  const enrolment: TotpEnrolment = await auth.enrolTotp();
  console.log(enrolment.secret, enrolment.otpauth_uri, enrolment.qr_svg);
  const recoveryCodes: string[] = await auth.confirmTotp("123456");
  const fresh: string[] = await auth.regenerateRecoveryCodes();
  console.log(recoveryCodes.length, fresh[0]);
  await auth.disableTotp();
  const byPassword: ReauthInput = { password: "correct horse" };
  await auth.reauthenticate(byPassword);
  await auth.reauthenticate({ method: "recovery_code", code: "aaaa-bbbb-cccc" });
  try {
    await auth.regenerateRecoveryCodes();
  } catch (e) {
    if (e instanceof AuthError && e.code == "step_up_required") {
      const ways: StepUpMethod[] | null = e.methods;
      if (ways?.includes("password")) await auth.reauthenticate({ password: "correct horse" });
    }
  }
  await auth.logoutAll();
  await auth.deleteAccount("correct horse");
  await auth.logout();
  auth.close();
}
