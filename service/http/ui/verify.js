// Verifies the address as soon as the emailed link (#token=...) opens; offers a new link when
// this one is spent, expired or incomplete.
import {
  authClient, describe, handleForm, LINK_SPENT, PROFILE, showAlert, showStatus, takeFromFragment,
} from "./ui.js";

const result = document.getElementById("verify-result");
const next = document.getElementById("verify-next");
const resend = document.getElementById("resend-form");
const token = takeFromFragment("token");
const client = authClient();

handleForm(resend, async ({ email }) => {
  await client.resendVerification(email.trim());
  return `If the address belongs to an account not verified yet, a new link is on its way to ${email.trim()}.`;
});

/** Whether the link verified the address, and if not, why (an alert) or what to do (a status). */
async function verify() {
  if (!token) { // come to ask for a new link (the sign-in page sends unverified users here)
    return { status: "To verify your address, open the link we emailed you, or get a new one here." };
  }
  try {
    await client.verifyEmail(token);
    return { ok: true, status: "Your email address is verified." };
  } catch (error) {
    return { alert: error?.fields?.token ? LINK_SPENT : describe(error) };
  }
}

// Both at once: the link offered next depends on whether this browser is signed in. The
// outcome and the controls that go with it appear together.
const [outcome] = await Promise.all([verify(), client.ready]);
if (outcome.ok && client.state.signedIn) {
  const a = next.querySelector("a");
  a.href = PROFILE;
  a.textContent = "Go to your profile";
}
next.hidden = !outcome.ok;
resend.hidden = !!outcome.ok;
document.getElementById("verify-back").hidden = !!outcome.ok;
result.querySelector("[role=status]").textContent = "";
if (outcome.alert) showAlert(result, outcome.alert);
if (outcome.status) showStatus(result, outcome.status);
