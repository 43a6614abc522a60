// The profile's two-factor section: whether it is on and how many recovery codes are left;
// setting up an authenticator app (QR code, the key as text, a code to confirm), the recovery
// codes shown once, new recovery codes, turning it off. Actions that need a recent sign-in go
// through step-up.js.
import { withStepUp } from "./step-up.js";
import { clearMessages, describe, handleForm, showAlert, showStatus } from "./ui.js";

const section = document.getElementById("mfa-section");
const sectionAlert = section.querySelector(":scope > [role=alert]");
const actions = document.getElementById("mfa-actions");
const turnOff = document.getElementById("mfa-turn-off");
const setup = document.getElementById("mfa-setup");
const recovery = document.getElementById("mfa-recovery");
const confirmForm = document.getElementById("mfa-confirm-form");

const button = (name) => section.querySelector(`[data-mfa-${name}]`);

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** GET mfa/'s answer, on the page (passkeys.js shows it again after a passkey changed). */
export function showTwoFactor(status) {
  const on = status.totp.enabled;
  const passkeys = status.webauthn?.credentials > 0;
  const since = status.totp.confirmed_at && new Date(status.totp.confirmed_at);
  let text = on ? (since ? `On, since ${since.toLocaleDateString()}` : "On") : "Off";
  if (!on && passkeys) {
    text = status.has_password === false ? "Off: you sign in with your passkeys"
      : "Off: your passkeys are the second step after your password";
  }
  document.getElementById("mfa-state").textContent = text;
  document.getElementById("mfa-codes-left").textContent = status.recovery_codes_left
    ? plural(status.recovery_codes_left, "code")
    : `None: make new ones so that you can still sign in without your ${on ? "app" : "passkeys"}`;
  for (const element of section.querySelectorAll("[data-mfa-on]")) element.hidden = !on;
  // Recovery codes back up any factor, a passkey as much as the app.
  for (const element of section.querySelectorAll("[data-mfa-codes]")) element.hidden = !on && !passkeys;
  button("set-up").hidden = on;
  document.getElementById("mfa-enrolment-required").hidden = !status.enrolment_required;
}

async function reload(client) {
  showTwoFactor(await client.mfaStatus());
}

/** The section's buttons are off while `work` runs; what it throws is the section's alert (a
 * 400's message is the API's own: "turn on a second factor first", say). */
async function run(work) {
  clearMessages();
  const buttons = [...section.querySelectorAll("button")];
  for (const b of buttons) b.disabled = true;
  section.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (error) {
    showAlert(sectionAlert, error?.status === 400 ? error.message : describe(error));
  }
  section.removeAttribute("aria-busy");
  for (const b of buttons) b.disabled = false;
}

function showPanel(panel) {
  for (const other of [turnOff, setup, recovery]) other.hidden = other !== panel;
  actions.hidden = panel !== null;
}

function toBase64(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function showSetup({ secret, otpauth_uri, qr_svg }) {
  // An <img> of the SVG: never put in the document, so nothing in it can run.
  document.getElementById("mfa-qr").src = "data:image/svg+xml;base64," + toBase64(qr_svg);
  document.getElementById("mfa-secret").textContent = secret.replace(/(.{4})(?=.)/g, "$1 ");
  const open = document.getElementById("mfa-otpauth");
  open.hidden = !otpauth_uri.startsWith("otpauth://");
  if (!open.hidden) open.href = otpauth_uri;
  confirmForm.reset();
  showPanel(setup);
  document.getElementById("mfa-confirm-code").focus();
}

function showCodes(codes) {
  const list = document.getElementById("mfa-recovery-codes");
  list.replaceChildren(...codes.map((code) => {
    const item = document.createElement("li");
    const text = document.createElement("code");
    text.textContent = code;
    item.append(text);
    return item;
  }));
  showPanel(recovery);
  document.getElementById("mfa-recovery-heading").focus();
}

/** Loads the section's state and wires its buttons; a failure to load is said in it. */
export async function setUpTwoFactor(client) {
  try {
    await reload(client);
  } catch (error) {
    showAlert(sectionAlert, describe(error));
  }

  button("set-up").addEventListener("click", () => run(async () => {
    showSetup(await withStepUp(client, () => client.enrolTotp()));
  }));
  section.querySelector("[data-mfa-setup-cancel]").addEventListener("click", () => {
    clearMessages();
    showPanel(null);
    button("set-up").focus();
  });
  handleForm(confirmForm, async ({ code }) => {
    const codes = await client.confirmTotp(code.trim());
    await reload(client).catch(() => {}); // on either way; the state shows on the next load
    if (codes.length) showCodes(codes);
    else {
      showPanel(null);
      button("regenerate").focus();
    }
    showStatus(section, "Two-factor authentication is on. Next time you sign in, you will be asked for a code from your app.");
    return null;
  });

  button("recovery-done").addEventListener("click", () => {
    // Gone from the page, not just hidden: they are shown once.
    document.getElementById("mfa-recovery-codes").replaceChildren();
    clearMessages();
    showPanel(null);
    button("regenerate").focus();
  });
  button("regenerate").addEventListener("click", () => run(async () => {
    showCodes(await withStepUp(client, () => client.regenerateRecoveryCodes()));
    await reload(client);
    showStatus(section, "New recovery codes are made; the old ones no longer work.");
  }));

  button("turn-off").addEventListener("click", () => {
    clearMessages();
    showPanel(turnOff);
    button("turn-off-cancel").focus();
  });
  button("turn-off-cancel").addEventListener("click", () => {
    showPanel(null);
    button("turn-off").focus();
  });
  button("turn-off-confirm").addEventListener("click", () => run(async () => {
    await withStepUp(client, () => client.disableTotp());
    showPanel(null);
    await reload(client);
    showStatus(section, "Two-factor authentication is off.");
    button("set-up").focus();
  }));
}
