// Verifies the address as soon as the emailed link (#token=...) opens; offers a new link when
// this one is spent, expired or incomplete.
import { authClient, describe, handleForm, PROFILE, ready, showAlert, showStatus, takeFromFragment } from "./ui.js";

const result = document.getElementById("verify-result");
const next = document.getElementById("verify-next");
const resend = document.getElementById("resend-form");
const token = takeFromFragment("token");
const client = authClient();

handleForm(resend, async ({ email }) => {
  await client.resendVerification(email.trim());
  return `If ${email.trim()} belongs to an account that is not verified yet, a new link is on its way.`;
});

async function verify() {
  if (!token) throw { fields: { token: ["This page needs the whole link from your email, and this one has no token."] } };
  await client.verifyEmail(token);
}

try {
  await verify();
  showStatus(result, "Your email address is verified.");
  await client.ready;
  if (client.state.signedIn) {
    const a = next.querySelector("a");
    a.href = PROFILE;
    a.textContent = "Go to your profile";
  }
} catch (error) {
  result.querySelector("[role=status]").hidden = true;
  showAlert(result, error?.fields?.token ? error.fields.token.join(" ") : describe(error));
  resend.hidden = false;
}
next.hidden = false;
ready();
