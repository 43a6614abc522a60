// The signed-in user's sessions: this device marked, every other one revocable.
import { ready, setUpNav, signedInProfile } from "./signed-in.js";
import { authClient, clearMessages, describe, showAlert, showStatus } from "./ui.js";
import { deviceName } from "./user-agent.js";

const client = authClient({ signedInOnly: true });
setUpNav(client);

const list = document.getElementById("session-list");
const section = list.closest("section");
const heading = document.getElementById("sessions-heading");

const when = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function time(iso) {
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

function item(session) {
  const li = document.createElement("li");
  li.className = session.current ? "session current" : "session";
  const name = document.createElement("p");
  name.className = "device";
  name.id = `session-${session.id}`;
  name.textContent = deviceName(session.user_agent);
  if (session.current) {
    const mark = document.createElement("span");
    mark.className = "badge";
    mark.textContent = "This device";
    name.append(" ", mark);
  }
  const facts = document.createElement("dl");
  facts.className = "facts";
  facts.append(...fact("IP address", session.ip || "unknown"), ...fact("Signed in", time(session.created)),
    ...fact("Last used", time(session.last_used)));
  li.append(name, facts);
  if (!session.current) {
    const revoke = document.createElement("button");
    revoke.type = "button";
    revoke.className = "danger";
    revoke.textContent = "Revoke";
    // The name stays "Revoke"; which session it ends is its description.
    revoke.setAttribute("aria-describedby", name.id);
    revoke.addEventListener("click", () => revokeSession(session, li, revoke));
    li.append(revoke);
  }
  return li;
}

async function revokeSession(session, li, button) {
  clearMessages();
  button.disabled = true;
  try {
    await client.revokeSession(session.id);
  } catch (error) {
    button.disabled = false;
    showAlert(section, describe(error));
    button.focus();
    return;
  }
  li.remove();
  showStatus(section, `The session on ${deviceName(session.user_agent)} is revoked.`);
  heading.focus();
}

function newestFirst(a, b) {
  return (b.current - a.current) || String(b.last_used).localeCompare(String(a.last_used));
}

if (await signedInProfile(client)) {
  try {
    const sessions = await client.listSessions();
    list.replaceChildren(...sessions.sort(newestFirst).map(item));
    ready();
  } catch (error) {
    ready();
    showAlert(section, describe(error));
  }
}
