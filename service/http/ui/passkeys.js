// The profile's passkeys section: the account's passkeys and security keys (name, when added
// and last used, synced or kept on one device), adding one (the browser makes it; the first
// factor of an account answers its recovery codes, shown once), renaming, deleting, and
// removing the password once passkeys can stand in for it. Actions that need a recent sign-in
// go through step-up.js.
import { withStepUp } from "./step-up.js";
import { showTwoFactor } from "./two-factor.js";
import { clearMessages, describe, handleForm, setFieldError, showAlert, showStatus } from "./ui.js";

const section = document.getElementById("passkeys-section");
const sectionAlert = section.querySelector(":scope > [role=alert]");
const heading = document.getElementById("passkeys-heading");
const list = document.getElementById("passkey-list");
const addForm = document.getElementById("passkey-add-form");
const renameForm = document.getElementById("passkey-rename-form");
const deletePanel = document.getElementById("passkey-delete");
const recovery = document.getElementById("passkey-recovery");
const removal = document.getElementById("password-removal");
const removeButton = removal.querySelector("[data-remove-password]");
const removeConfirm = document.getElementById("password-removal-confirm");
const webauthn = typeof window.PublicKeyCredential === "function";

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
let client = null;
let passkeys = [];
let target = null; // the passkey being renamed or deleted

const nameOf = (passkey) => passkey.name || "Unnamed passkey";
const itemId = (passkey) => `passkey-${passkey.id}`;

function time(iso) {
  if (!iso) return "Never";
  const element = document.createElement("time");
  element.dateTime = iso;
  const date = new Date(iso);
  element.textContent = Number.isNaN(date.getTime()) ? iso : when.format(date);
  return element;
}

function fact(term, value) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.append(value);
  return [dt, dd];
}

function button(text, className, describedBy, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  if (className) b.className = className;
  b.textContent = text;
  // The name stays "Rename" / "Delete"; which passkey is its description.
  b.setAttribute("aria-describedby", describedBy);
  b.addEventListener("click", onClick);
  return b;
}

function item(passkey) {
  const li = document.createElement("li");
  li.className = "session passkey";
  const name = document.createElement("p");
  name.className = "device";
  name.id = itemId(passkey);
  name.textContent = nameOf(passkey);
  const facts = document.createElement("dl");
  facts.className = "facts";
  facts.append(...fact("Added", time(passkey.created)), ...fact("Last used", time(passkey.last_used)),
    ...fact("Synced", passkey.backup_state
      ? "Yes: your password manager or platform keeps a copy on your other devices"
      : "No: kept on this device or security key only"));
  const actions = document.createElement("div");
  actions.className = "form-actions";
  actions.append(button("Rename", "", name.id, () => startRename(passkey)),
    button("Delete", "danger", name.id, () => askDelete(passkey)));
  li.append(name, facts, actions);
  return li;
}

/** May the password go? The API's rule: two passkeys, or one and unused recovery codes. */
function renderRemoval(status) {
  const count = status.webauthn?.credentials ?? passkeys.length;
  const hasPassword = status.has_password !== false;
  const allowed = hasPassword && (count >= 2 || (count === 1 && status.recovery_codes_left > 0));
  const rule = document.getElementById("password-removal-rule");
  if (!hasPassword) {
    rule.textContent = "Your account has no password: you sign in with your passkeys only. A password reset by email sets one again.";
  } else if (allowed) {
    rule.textContent = "You can remove your password and sign in with your passkeys only.";
  } else if (count === 0) {
    rule.textContent = "Add passkeys first: with two, or one and unused recovery codes, you can remove your password and sign in with passkeys only.";
  } else {
    rule.textContent = "To remove your password, first add a second passkey (or make new recovery codes), so that losing one device cannot lock you out of your account.";
  }
  removeButton.hidden = !allowed;
  if (!allowed) removeConfirm.hidden = true;
  // The password card: nothing to change without a password, but a reset link sets one.
  document.getElementById("password-none").hidden = hasPassword;
  document.getElementById("password-form").hidden = !hasPassword;
}

async function reload() {
  const [listed, status] = await Promise.all([client.listPasskeys(), client.mfaStatus()]);
  passkeys = listed;
  list.replaceChildren(...listed.map(item));
  document.getElementById("passkeys-none").hidden = listed.length > 0;
  renderRemoval(status);
  showTwoFactor(status);
}

/** The section's buttons are off while `work` runs; what it throws is the section's alert (a
 * 400's message is the API's own: "the last way to sign in", say). */
async function run(work) {
  clearMessages();
  const buttons = [...section.querySelectorAll("button")];
  for (const b of buttons) b.disabled = true;
  section.setAttribute("aria-busy", "true");
  try {
    await work();
  } catch (error) {
    showAlert(sectionAlert, error?.status === 400 ? error.message : describe(error));
    heading.focus(); // the alert is just below; the button pressed may be gone
  }
  section.removeAttribute("aria-busy");
  for (const b of buttons) b.disabled = false;
}

function hidePanels() {
  renameForm.hidden = true;
  deletePanel.hidden = true;
  target = null;
}

function focusItemButton(passkey, text) {
  const li = document.getElementById(itemId(passkey))?.closest("li");
  const found = li && [...li.querySelectorAll("button")].find((b) => b.textContent === text);
  (found ?? heading).focus();
}

function startRename(passkey) {
  clearMessages();
  hidePanels();
  target = passkey;
  document.getElementById("passkey-rename-heading").textContent = `Rename “${nameOf(passkey)}”`;
  renameForm.reset();
  renameForm.elements.namedItem("name").value = passkey.name ?? "";
  renameForm.hidden = false;
  renameForm.elements.namedItem("name").select();
}

function askDelete(passkey) {
  clearMessages();
  hidePanels();
  target = passkey;
  document.getElementById("passkey-delete-question").textContent =
    `Delete the passkey “${nameOf(passkey)}”? It will no longer sign you in. Remove it from your device, password manager or security key too.`;
  deletePanel.hidden = false;
  deletePanel.querySelector("[data-passkey-delete-cancel]").focus();
}

function showCodes(codes) {
  const shown = document.getElementById("passkey-recovery-codes");
  shown.replaceChildren(...codes.map((code) => {
    const li = document.createElement("li");
    const text = document.createElement("code");
    text.textContent = code;
    li.append(text);
    return li;
  }));
  recovery.hidden = false;
  document.getElementById("passkey-recovery-heading").focus();
}

/** Loads the section and wires its controls; a failure to load is said in it. */
export async function setUpPasskeys(authClient) {
  client = authClient;
  try {
    await reload();
  } catch (error) {
    showAlert(sectionAlert, describe(error));
  }
  if (!webauthn) {
    document.getElementById("passkeys-unsupported").hidden = false;
    for (const control of addForm.querySelectorAll("input, button")) control.disabled = true;
  }

  handleForm(addForm, async ({ name }) => {
    hidePanels();
    const made = await withStepUp(client, () => client.registerPasskey(name.trim() || undefined));
    addForm.reset();
    await reload().catch(() => {}); // it is made; the list shows it on the next load otherwise
    showStatus(section, `The passkey “${nameOf(made.credential)}” is added. You can sign in with it now.`);
    if (made.recoveryCodes.length) showCodes(made.recoveryCodes);
    return null;
  });

  recovery.querySelector("[data-passkey-recovery-done]").addEventListener("click", () => {
    // Gone from the page, not just hidden: they are shown once.
    document.getElementById("passkey-recovery-codes").replaceChildren();
    clearMessages();
    recovery.hidden = true;
    heading.focus();
  });

  handleForm(renameForm, async ({ name }) => {
    const renaming = target;
    if (!name.trim()) {
      setFieldError(renameForm.elements.namedItem("name"), "Enter a name for the passkey.");
      return null;
    }
    const renamed = await client.renamePasskey(renaming.id, name.trim());
    hidePanels();
    await reload().catch(() => {});
    showStatus(section, `The passkey is renamed “${nameOf(renamed)}”.`);
    focusItemButton(renamed, "Rename");
    return null;
  });
  renameForm.querySelector("[data-passkey-rename-cancel]").addEventListener("click", () => {
    const renaming = target;
    clearMessages();
    hidePanels();
    focusItemButton(renaming, "Rename");
  });

  deletePanel.querySelector("[data-passkey-delete-cancel]").addEventListener("click", () => {
    const deleting = target;
    hidePanels();
    focusItemButton(deleting, "Delete");
  });
  deletePanel.querySelector("[data-passkey-delete-confirm]").addEventListener("click", () => {
    const deleting = target;
    hidePanels();
    return run(async () => {
      await withStepUp(client, () => client.deletePasskey(deleting.id));
      await reload();
      showStatus(section, `The passkey “${nameOf(deleting)}” is deleted.`);
      heading.focus();
    });
  });

  removeButton.addEventListener("click", () => {
    clearMessages();
    removeConfirm.hidden = false;
    removeConfirm.querySelector("[data-remove-password-cancel]").focus();
  });
  removeConfirm.querySelector("[data-remove-password-cancel]").addEventListener("click", () => {
    removeConfirm.hidden = true;
    removeButton.focus();
  });
  removeConfirm.querySelector("[data-remove-password-confirm]").addEventListener("click", () => {
    removeConfirm.hidden = true;
    return run(async () => {
      await withStepUp(client, () => client.removePassword());
      await reload();
      showStatus(section, "Your password is removed. You sign in with your passkeys now.");
      heading.focus();
    });
  });
}
