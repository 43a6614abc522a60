// Sign in, with a second step for an account with a second factor; says why the last session
// ended when the address carries #reason=...
import {
  authClient, clearMessages, handleForm, link, navigate, PROFILE, setFieldError, showAlert,
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
};
const STEP_EXPIRED = "Your sign-in expired or had too many wrong codes. Enter your password again.";

const reasonBox = document.getElementById("signed-out-reason");
const form = document.getElementById("signin-form");
const mfaForm = document.getElementById("mfa-form");
const codeInput = document.getElementById("mfa-code");
const switchButton = mfaForm.querySelector("[data-switch-method]");
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

const otherThan = (m) => (m === "totp" ? "recovery_code" : "totp");

function useMethod(next) {
  method = next;
  const ask = METHODS[next];
  mfaForm.querySelector("label[for=mfa-code]").textContent = ask.label;
  document.getElementById("mfa-code-hint").textContent = ask.hint;
  codeInput.inputMode = ask.inputMode;
  codeInput.autocomplete = ask.autocomplete;
  codeInput.value = "";
  // The button offers the other method, when the account has it.
  switchButton.textContent = METHODS[otherThan(next)].switchText;
  switchButton.hidden = !step.methods.includes(otherThan(next));
}

function showSecondStep(challenge) {
  step = challenge;
  form.elements.namedItem("password").value = "";
  form.hidden = true;
  mfaForm.hidden = false;
  useMethod(step.methods.includes("totp") ? "totp" : "recovery_code");
  codeInput.focus();
}

function backToFirstStep(message) {
  step = null;
  clearMessages();
  mfaForm.hidden = true;
  form.hidden = false;
  if (message) showAlert(form, message);
  form.elements.namedItem("password").focus();
}

switchButton.addEventListener("click", () => {
  clearMessages();
  useMethod(otherThan(method));
  codeInput.focus();
});
mfaForm.querySelector("[data-start-over]").addEventListener("click", () => backToFirstStep(null));

handleForm(mfaForm, async ({ code }) => {
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

handleForm(form, async ({ username_or_email, password }) => {
  try {
    await client.login(username_or_email.trim(), password);
  } catch (error) {
    if (error?.code === "mfa_required") {
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

await client.ready;
if (client.state.signedIn) navigate(PROFILE);
