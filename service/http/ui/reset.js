// Set a new password with the token of the emailed link (#token=...).
import { authClient, handleForm, link, LINK_SPENT, showAlert, showStatus, takeFromFragment } from "./ui.js";

const form = document.getElementById("reset-form");
const done = document.getElementById("reset-done");
const token = takeFromFragment("token");
const client = authClient();

function askAgain(message) {
  return [`${message} `, link("/auth/forgot", "Ask for a new link"), "."];
}

const INCOMPLETE = "This page needs the whole link from your email, and this one has no token.";
if (!token) showAlert(form, askAgain(INCOMPLETE));

handleForm(form, async ({ password, password2 }) => {
  if (!token) {
    showAlert(form, askAgain(INCOMPLETE));
    return null;
  }
  try {
    await client.confirmPasswordReset(token, password, password2);
  } catch (error) {
    // The token is no field of this form: a spent or expired link needs a new one.
    if (!error?.fields?.token) throw error;
    showAlert(form, askAgain(LINK_SPENT));
    return null;
  }
  form.hidden = true;
  done.hidden = false;
  showStatus(document.getElementById("reset-status"), "Your new password is set, and every session of your account has ended. Sign in with the new password.");
  done.querySelector("a").focus();
  return null;
});
