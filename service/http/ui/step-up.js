// Actions that need a recent sign-in: when the API answers 403 step_up_required, a dialog asks
// the user to confirm it is them (the password, a code from the app or a recovery code, or a
// passkey), the client re-authenticates, and the action is tried once more. Cancelling gives
// the action's refusal back to its caller, which shows it.
import { handleButton, handleForm } from "./ui.js";

const dialog = document.getElementById("reauth-dialog");
const form = document.getElementById("reauth-form");
const intro = form.querySelector("p");
const switchButton = form.querySelector("[data-reauth-switch]");
const passkeyButton = form.querySelector("[data-reauth-passkey]");
const continueButton = form.querySelector("button[type=submit]");
const INTRO = {
  password: "This needs a recent sign-in. Enter your password again to go on.",
  code: "This needs a recent sign-in. Enter a code from your authenticator app, or a recovery code, to go on.",
  passkey: "This needs a recent sign-in. Use your passkey or security key to go on.",
};
const webauthn = typeof window.PublicKeyCredential === "function";

let client = null;
let mode = "password";
let pending = null; // the open dialog's {resolve, reject, refusal}

// mode: "password" or "code" (a field each), or "passkey" (no field: the account has neither
// a password nor codes, and the passkey button is the way).
function useMode(next) {
  mode = next;
  for (const field of form.querySelectorAll("[data-reauth]")) field.hidden = field.dataset.reauth !== next;
  intro.textContent = INTRO[next];
  switchButton.textContent = next === "password" ? "Use a code instead" : "Use your password instead";
  continueButton.hidden = next === "passkey";
  passkeyButton.classList.toggle("primary", next === "passkey");
  (form.querySelector(`[data-reauth=${next}] input`) ?? passkeyButton).focus();
}

function confirmIdentity(refusal) {
  return new Promise((resolve, reject) => {
    pending = { resolve, reject, refusal };
    form.reset();
    const methods = refusal.methods ?? ["password"];
    const byCode = methods.includes("totp") || methods.includes("recovery_code");
    const byPasskey = webauthn && methods.includes("webauthn");
    switchButton.hidden = !byCode || !methods.includes("password");
    passkeyButton.hidden = !byPasskey;
    dialog.showModal();
    useMode(methods.includes("password") ? "password" : byCode || !byPasskey ? "code" : "passkey");
  });
}

function done() {
  const open = pending;
  pending = null;
  dialog.close();
  open?.resolve();
}

// Escape, Cancel, or done: a dialog closed with its question open is a "no".
dialog.addEventListener("close", () => {
  const open = pending;
  pending = null;
  open?.reject(open.refusal);
});
form.querySelector("[data-reauth-cancel]").addEventListener("click", () => dialog.close());
switchButton.addEventListener("click", () => useMode(mode === "password" ? "code" : "password"));

handleForm(form, async ({ password, code }) => {
  if (mode === "passkey") return null; // no field to send: the passkey button asks
  const typed = (code ?? "").trim();
  // Six digits are the app's code; anything else is taken as a recovery code.
  const input = mode === "password" ? { password }
    : { method: /^\d{6}$/.test(typed.replace(/\s/g, "")) ? "totp" : "recovery_code", code: typed };
  await client.reauthenticate(input);
  done();
  return null;
});

// The browser's prompt for one of the account's passkeys; a refusal (cancelled, none here, or
// the server's) is the dialog's alert, and the dialog stays for another try or another way.
handleButton(passkeyButton, async () => {
  await client.reauthenticate({ method: "webauthn" });
  done();
  return null;
});

/** `action()`, and once more after the user confirmed it is them if it was refused as
 * step_up_required. */
export async function withStepUp(authClient, action) {
  client = authClient;
  try {
    return await action();
  } catch (error) {
    if (error?.code !== "step_up_required") throw error;
    await confirmIdentity(error);
    return action();
  }
}
