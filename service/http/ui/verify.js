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
  return `If ${email.trim()} belongs to an account that is not verified yet, a new link is on its way.`;
});

async function verified() {
  result.querySelector("[role=status]").textContent = "";
  if (!token) { // come to ask for a new link (the sign-in page sends unverified users here)
    showStatus(result, "To verify your address, open the link we emailed you, or get a new one here.");
    return false;
  }
  try {
    await client.verifyEmail(token);
    return true;
  } catch (error) {
    showAlert(result, error?.fields?.token ? LINK_SPENT : describe(error));
    return false;
  }
}

if (await verified()) {
  showStatus(result, "Your email address is verified.");
  await client.ready;
  if (client.state.signedIn) {
    const a = next.querySelector("a");
    a.href = PROFILE;
    a.textContent = "Go to your profile";
  }
  next.hidden = false;
} else {
  resend.hidden = false;
  document.getElementById("verify-back").hidden = false;
}
