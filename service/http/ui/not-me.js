// "This wasn't me", from a security alert's link (#token=...). Nothing happens until the
// button is pressed: mail scanners open links, and must not end anyone's sessions.
import { authClient, handleForm, link, LINK_SPENT, showAlert, showStatus, takeFromFragment } from "./ui.js";

const form = document.getElementById("not-me-form");
const done = document.getElementById("not-me-done");
const token = takeFromFragment("token");
// If this browser was signed in, its session ends too; the page stays to say what happened.
const client = authClient();

const INCOMPLETE = "This page needs the whole link from the alert email, and this one has no token.";
if (!token) showAlert(form, INCOMPLETE);

handleForm(form, async () => {
  if (!token) {
    showAlert(form, INCOMPLETE);
    return null;
  }
  try {
    await client.notMe(token);
  } catch (error) {
    if (!error?.fields?.token) throw error;
    showAlert(form, [`${LINK_SPENT} If you still think someone else is in your account, `,
      link("/auth/forgot", "set a new password"), "."]);
    return null;
  }
  form.hidden = true;
  done.hidden = false;
  showStatus(document.getElementById("not-me-status"), "Every session of your account has ended, and a link to set a new password is on its way to your email.");
  done.querySelector("a").focus();
  return null;
});
