// What every hosted page shares: this tab's one client, form handling, and how the API's
// answers become messages (signed-in.js adds what the pages behind sign-in share). The pages
// run under a CSP with no inline code, so all behaviour is in these modules.
import { createAuthClient } from "/api/v1/client/authsvc.js";

export const SIGNIN = "/auth/signin";
export const PROFILE = "/auth/profile";
// What a link's refused token means to its reader (the API says "Invalid or expired token.").
export const LINK_SPENT = "This link has expired or was used already.";

let sessionEndHandler = () => {};
let client = null;
// Set once a page has decided to go elsewhere: its forms stay disabled until the page is gone.
let leaving = false;

/** The URL of the sign-in page saying why the session ended. */
export function signedOutUrl(reason) {
  return `${SIGNIN}#reason=${encodeURIComponent(reason || "default")}`;
}

/** Leaves the page for `url`, once: a second call (the client's session end racing the
 * page's own redirect) would abort the first navigation. */
export function navigate(url) {
  if (leaving) return;
  leaving = true;
  location.replace(url);
}

/** Runs a call that ends the session on purpose, so the sign-in page says what the user did
 * ("signed out everywhere", "account deleted") rather than the client's generic reason. */
export async function endingSession(reason, call) {
  const saved = sessionEndHandler;
  sessionEndHandler = () => navigate(signedOutUrl(reason));
  try {
    await call();
  } finally {
    sessionEndHandler = saved;
  }
  navigate(signedOutUrl(reason));
}

/** This tab's client. Pages behind sign-in go to the sign-in page, saying why, when the
 * session ends in any tab; the others stay (a session ending while someone resets a password
 * or follows a link must not take them off that page). */
export function authClient({ signedInOnly = false } = {}) {
  if (signedInOnly) sessionEndHandler = (reason) => navigate(signedOutUrl(reason));
  // "session": a reload keeps the session; other tabs get it over BroadcastChannel.
  client ??= createAuthClient({ storage: "session", onSessionEnd: (reason) => sessionEndHandler(reason) });
  return client;
}

/** A token from the link's fragment, which never reaches a server; the fragment is then
 * taken out of the address bar, so it is in no bookmark, screenshot or shared URL. */
export function takeFromFragment(name) {
  const value = new URLSearchParams(location.hash.slice(1)).get(name);
  if (location.hash) history.replaceState(history.state, "", location.pathname + location.search);
  return value;
}

// ---- messages ---------------------------------------------------------------------------

function region(scope, kind) {
  const selector = kind === "alert" ? "[role=alert]" : "[role=status]";
  return scope.matches(selector) ? scope : scope.querySelector(selector);
}

/** Shows `content` (text or nodes) in a live region. A status region is always in the page
 * (empty ones take no room), so that what appears in it is announced; an alert is hidden while
 * empty, so a page shows only the errors that mean something now (and a screen reader
 * announces an alert as it appears). */
function fill(element, content) {
  if (!element) return;
  element.replaceChildren(...[content].flat());
  element.hidden = false;
}

function empty(element) {
  element.replaceChildren();
  element.hidden = element.getAttribute("role") === "alert";
}

export function showStatus(scope, content) {
  fill(region(scope, "status"), content);
}

export function showAlert(scope, content) {
  fill(region(scope, "alert"), content);
}

/** Clears every message on the page: each one answers the last thing done. */
export function clearMessages() {
  for (const element of document.querySelectorAll("[role=alert], [role=status]")) empty(element);
  for (const input of document.querySelectorAll("[aria-invalid=true]")) clearFieldError(input);
}

export function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// What the browser's refusal of a passkey prompt means (the client's webauthn_refused, by the
// DOMException's name).
const PASSKEY_REFUSALS = {
  NotAllowedError: "No passkey was used: the request was cancelled or timed out, or this device has no passkey for this account.",
  AbortError: "The passkey request was cancelled.",
  InvalidStateError: "This device or security key already holds a passkey for your account.",
  NotSupportedError: "This browser cannot use passkeys here.",
  SecurityError: "This browser does not allow passkeys for this site's address.",
};

/** What went wrong, in words, for an error that names no field. */
export function describe(error) {
  if (error?.code === "webauthn_refused") {
    return PASSKEY_REFUSALS[error.reason] ?? "The passkey could not be used. Try again.";
  }
  const status = error?.status;
  if (status === 0) return "The server could not be reached. Check your connection and try again.";
  if (status === 429) {
    return error.retryAfter == null ? "Too many attempts, try again later."
      : `Too many attempts, try again in ${plural(error.retryAfter, "second")}.`;
  }
  if (status === 503) {
    return error.retryAfter == null ? "The service is unavailable right now, try again later."
      : `The service is unavailable right now, try again in ${plural(error.retryAfter, "second")}.`;
  }
  if (status >= 500) return "Something went wrong on our side. Try again in a moment.";
  const detail = error?.body?.detail;
  if (typeof detail === "string" && detail) return detail;
  if (typeof status !== "number") console.error(error);
  return "Something went wrong. Try again.";
}

// ---- field errors -----------------------------------------------------------------------

/** The element that holds an input's error: made when the form is set up, empty, as a polite
 * live region, so a screen reader announces a message when it appears (a region made with
 * its text already in it would not be). Focus moving to the first invalid field reads it too. */
function errorElementFor(input) {
  const id = `${input.id}-error`;
  let element = document.getElementById(id);
  if (!element) {
    element = document.createElement("p");
    element.id = id;
    element.className = "field-error";
    element.setAttribute("aria-live", "polite");
    (input.closest(".field") ?? input.parentElement).append(element);
  }
  return element;
}

function describedBy(input) {
  return (input.getAttribute("aria-describedby") ?? "").split(/\s+/).filter(Boolean);
}

export function setFieldError(input, message) {
  const element = errorElementFor(input);
  element.textContent = message;
  input.setAttribute("aria-invalid", "true");
  const ids = describedBy(input);
  if (!ids.includes(element.id)) input.setAttribute("aria-describedby", [...ids, element.id].join(" "));
}

function clearFieldError(input) {
  input.removeAttribute("aria-invalid");
  const id = `${input.id}-error`;
  const element = document.getElementById(id);
  if (element) element.textContent = "";
  const ids = describedBy(input).filter((other) => other !== id);
  if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
  else input.removeAttribute("aria-describedby");
}

/** Puts the API's DRF-shaped field messages on the inputs they name; messages for no input
 * of this form (non_field_errors, a link's token, ...) and errors without fields go to the
 * form's alert. */
function renderError(form, error) {
  const loose = [];
  for (const [name, messages] of Object.entries(error?.fields ?? {})) {
    const text = [messages].flat().join(" ");
    const input = name === "non_field_errors" ? null : form.elements.namedItem(name);
    if (input instanceof HTMLInputElement) setFieldError(input, text);
    else loose.push(text);
  }
  if (loose.length || !form.querySelector("[aria-invalid=true]")) {
    showAlert(form, loose.length ? loose.join(" ") : describe(error));
  }
}

// ---- forms ------------------------------------------------------------------------------

function setBusy(form, busy) {
  form.setAttribute("aria-busy", String(busy));
  for (const button of form.querySelectorAll("button")) button.disabled = busy;
}

function values(form) {
  const result = {};
  for (const [name, value] of new FormData(form)) result[name] = value;
  return result;
}

/** Runs `action(values)` on submit, with the form's buttons disabled while it is in flight.
 * A message it returns is the form's status; what it throws (an AuthError) is rendered on
 * the fields it names. Focus then moves to the first invalid field, if any. */
export function handleForm(form, action) {
  form.noValidate = true; // our own messages, in the page, not the browser's bubbles
  for (const input of form.querySelectorAll("input[id]")) errorElementFor(input);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run(form, action);
  });
}

/** The same for a button of `form` that is not its submit (a passkey's prompt, which needs no
 * field): the form busy meanwhile, its messages and errors shown as a submit's are. */
export function handleButton(button, action, form = button.form) {
  button.addEventListener("click", () => run(form, action));
}

async function run(form, action) {
  if (form.getAttribute("aria-busy") === "true") return;
  const focused = document.activeElement;
  clearMessages();
  setBusy(form, true);
  try {
    const message = await action(values(form), form);
    if (message) showStatus(form, message);
  } catch (error) {
    renderError(form, error);
  }
  if (leaving) return;
  setBusy(form, false);
  const invalid = form.querySelector("[aria-invalid=true]");
  if (invalid) invalid.focus();
  // Disabling the focused button took focus away: give it back, unless the page moved it.
  else if (!document.activeElement || document.activeElement === document.body) focused?.focus();
}
