// Sign in: with the password, then a second step for an account with a second factor (a code,
// or a passkey or security key); or with a passkey and no username, from the username field's
// autofill (a conditional request pending from page load) or the passkey button. Says why the
// last session ended when the address carries #reason=...
import {
  authClient, clearMessages, describe, handleButton, handleForm, link, navigate, PROFILE,
  setFieldError, showAlert,
} from "./ui.js";

const REASONS = {
  token_reused: "Your session was ended because its refresh token was used twice — someone may have a copy. Sign in again and change your password.",
  session_ended: "Your session was ended from another device or by an administrator. Sign in again.",
  password_changed: "Your password was changed, and that signed this session out. Sign in with the new password.",
  signed_out: "You have signed out.",
  signed_out_everywhere: "You have signed out on every device.",
  account_deleted: "Your account has been deleted.",
  user_inactive: "Your account has been deactivated. Contact the administrator to use it again.",
  token_expired: "Your session expired. Sign in again.",
  default: "You were signed out. Sign in again.",
};

// The second step's one field, as each method asks for it.
const METHODS = {
  totp: {
    label: "Authentication code",
    hint: "The 6-digit code your authenticator app shows now.",
    inputMode: "numeric",
    autocomplete: "one-time-code",
    wrong: "That code is not right, or no longer current. Enter the code your app shows now.",
    switchText: "Use your authenticator app",
  },
  recovery_code: {
    label: "Recovery code",
    hint: "One of the recovery codes you saved when you set up two-factor authentication. Each works once.",
    inputMode: "text",
    autocomplete: "off",
    wrong: "That recovery code is not right, or was used already.",
    switchText: "Use a recovery code",
  },
  // No field: the button asks the browser for the passkey.
  webauthn: { switchText: "Use a passkey" },
};
const STEP_EXPIRED = "Your sign-in expired or had too many wrong codes. Enter your password again.";
const PASSKEY_REFUSED = {
  unknown_credential: "This passkey is not, or no longer, one of an account here. Sign in another way, and remove the passkey from your device.",
  challenge_invalid: "That took too long. Try the passkey again.",
};
const SECOND_STEP_PASSKEY_REFUSED = "That passkey or security key is not one of this account's, or it could not be checked. Try again, or use another way.";

const reasonBox = document.getElementById("signed-out-reason");
const form = document.getElementById("signin-form");
const mfaForm = document.getElementById("mfa-form");
const codeInput = document.getElementById("mfa-code");
const switchButton = mfaForm.querySelector("[data-switch-method]");
const stepPasskeyButton = mfaForm.querySelector("[data-mfa-passkey]");
const verifyButton = mfaForm.querySelector("button[type=submit]");
const passkeyButton = form.querySelector("[data-passkey-signin]");
const webauthn = typeof window.PublicKeyCredential === "function";
// The MfaRequiredError of this sign-in (its complete() sends the code), and the method asked.
let step = null;
let method = "totp";

function showReason() {
  const reason = new URLSearchParams(location.hash.slice(1)).get("reason");
  if (!reason) return;
  // Not a secret, but a reload or bookmark should not repeat an old message.
  history.replaceState(history.state, "", location.pathname + location.search);
  reasonBox.textContent = Object.hasOwn(REASONS, reason) ? REASONS[reason] : REASONS.default;
}

showReason();
window.addEventListener("hashchange", showReason);

const client = authClient();
// Signed in here or in another tab: the profile is where a signed-in visitor belongs.
client.subscribe((state) => { if (state.signedIn) navigate(PROFILE); });

// ---- passkey autofill -------------------------------------------------------------------
// A conditional request, pending while the page shows the password form: the browser offers
// the site's passkeys in the username field's suggestions (autocomplete="username webauthn"),
// and one picked signs in. Only one WebAuthn request may be pending, so it is aborted before a
// button asks for a passkey or the second step shows (which may), and started again when the
// password form is back. Where the browser has no such autofill, the client refuses it and
// nothing happens.
let autofill = null; // {controller, settled}

function startAutofill() {
  if (autofill || !webauthn || !mfaForm.hidden) return;
  const controller = new AbortController();
  const settled = client.signInWithPasskey({ conditional: true, signal: controller.signal }).then(
    () => navigate(PROFILE),
    (error) => {
      if (controller.signal.aborted) return; // the page's own abort
      // No autofill in this browser, or the browser ended it (a testing browser's
      // authenticator holding no passkey of this site ends it at once): nothing to say. Nor
      // for a server without passkeys (404): the password form is as it was.
      if (error?.code === "webauthn_refused") return;
      const status = error?.status;
      if (error?.code === "webauthn_failed" || status === 429 || !(status >= 400 && status < 500)) {
        showAlert(form, passkeyRefusal(error));
      }
    }).finally(() => {
    if (autofill?.controller === controller) autofill = null;
  });
  autofill = { controller, settled };
}

/** Ends the pending autofill request; resolves once the browser has let go of it. */
async function stopAutofill() {
  const pending = autofill;
  autofill = null;
  if (!pending) return;
  pending.controller.abort();
  await pending.settled;
}

/** A passkey sign-in the server refused, in words. */
function passkeyRefusal(error) {
  if (error?.code !== "webauthn_failed") return describe(error);
  return PASSKEY_REFUSED[error.reason] ?? describe(error);
}

// ---- the second step ---------------------------------------------------------------------

// Which method the switch button offers from `m`: the codes take turns; from the passkey, the
// app if the account has it.
function otherThan(m) {
  if (m === "totp") return "recovery_code";
  if (m === "recovery_code") return "totp";
  return step.methods.includes("totp") ? "totp" : "recovery_code";
}

function useMethod(next) {
  method = next;
  const byPasskey = next === "webauthn";
  codeInput.closest(".field").hidden = byPasskey;
  verifyButton.hidden = byPasskey;
  document.getElementById("mfa-passkey-text").hidden = !byPasskey;
  stepPasskeyButton.classList.toggle("primary", byPasskey);
  stepPasskeyButton.hidden = !step.methods.includes("webauthn") || !webauthn;
  if (!byPasskey) {
    const ask = METHODS[next];
    mfaForm.querySelector("label[for=mfa-code]").textContent = ask.label;
    document.getElementById("mfa-code-hint").textContent = ask.hint;
    codeInput.inputMode = ask.inputMode;
    codeInput.autocomplete = ask.autocomplete;
    codeInput.value = "";
  }
  // The button offers another code, when the account has it.
  switchButton.textContent = METHODS[otherThan(next)].switchText;
  switchButton.hidden = !step.methods.includes(otherThan(next));
  (byPasskey ? stepPasskeyButton : codeInput).focus();
}

function showSecondStep(challenge) {
  step = challenge;
  form.elements.namedItem("password").value = "";
  form.hidden = true;
  mfaForm.hidden = false;
  const first = ["webauthn", "totp", "recovery_code"].find((m) => step.methods.includes(m)
    && (m !== "webauthn" || webauthn));
  useMethod(first ?? "recovery_code");
}

function backToFirstStep(message) {
  step = null;
  clearMessages();
  mfaForm.hidden = true;
  form.hidden = false;
  if (message) showAlert(form, message);
  form.elements.namedItem("password").focus();
  startAutofill();
}

switchButton.addEventListener("click", () => {
  clearMessages();
  useMethod(otherThan(method));
});
mfaForm.querySelector("[data-start-over]").addEventListener("click", () => backToFirstStep(null));

handleButton(stepPasskeyButton, async () => {
  try {
    await step.complete("webauthn");
  } catch (error) {
    if (error?.code === "mfa_code_invalid") {
      showAlert(mfaForm, SECOND_STEP_PASSKEY_REFUSED);
      return null;
    }
    if (error?.code === "mfa_token_invalid") {
      backToFirstStep(STEP_EXPIRED);
      return null;
    }
    throw error; // the browser's refusal (cancelled, no key) is said as the form's alert
  }
  navigate(PROFILE);
  return null;
});

handleForm(mfaForm, async ({ code }) => {
  if (method === "webauthn") return null; // no field to send: the passkey button asks
  if (!code.trim()) {
    setFieldError(codeInput, `Enter the ${METHODS[method].label.toLowerCase()}.`);
    return null;
  }
  try {
    await step.complete(method, code.trim());
  } catch (error) {
    if (error?.code === "mfa_code_invalid") {
      codeInput.value = "";
      setFieldError(codeInput, METHODS[method].wrong);
      return null;
    }
    if (error?.code === "mfa_token_invalid") {
      backToFirstStep(STEP_EXPIRED);
      return null;
    }
    throw error;
  }
  navigate(PROFILE);
  return null;
});

// The autofill request stays pending while a password is checked: a wrong one leaves the form
// as it was, passkey suggestions included, with no new request (the API counts each against
// the sign-in rate). The second step may ask for a passkey, so it ends it first.
handleForm(form, async ({ username_or_email, password }) => {
  try {
    await client.login(username_or_email.trim(), password);
  } catch (error) {
    if (error?.code === "mfa_required") {
      await stopAutofill();
      showSecondStep(error);
      return null;
    }
    if (error?.code !== "email_not_verified") throw error;
    showAlert(form, [`${error.body?.detail ?? "This email address is not verified yet."} `,
      "Open the link we emailed you, or ", link("/auth/verify", "ask for a new one"), "."]);
    return null;
  }
  navigate(PROFILE);
  return null;
});

// The button: the browser's own passkey prompt, for a browser without autofill of passkeys or
// a user who does not look there.
passkeyButton.closest("[data-passkeys]").hidden = !webauthn;
handleButton(passkeyButton, async () => {
  await stopAutofill();
  if (client.state.signedIn) return null;
  try {
    await client.signInWithPasskey();
  } catch (error) {
    startAutofill();
    showAlert(form, passkeyRefusal(error));
    return null;
  }
  navigate(PROFILE);
  return null;
});

await client.ready;
if (client.state.signedIn) navigate(PROFILE);
else startAutofill();
