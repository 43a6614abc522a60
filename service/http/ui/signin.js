// Sign in; says why the last session ended when the address carries #reason=...
import { authClient, handleForm, link, navigate, PROFILE, showAlert } from "./ui.js";

const REASONS = {
  token_reused: "Your session was ended because its refresh token was used twice — someone may have a copy. Sign in again and change your password.",
  session_ended: "Your session was ended from another device or by an administrator. Sign in again.",
  password_changed: "Your password was changed, and that signed this session out. Sign in with the new password.",
  signed_out: "You have signed out.",
  signed_out_everywhere: "You have signed out on every device.",
  account_deleted: "Your account has been deleted.",
  user_inactive: "Your account has been deactivated. Contact the administrator to use it again.",
  token_expired: "Your session expired. Sign in again.",
  default: "You were signed out. Sign in again.",
};

const reasonBox = document.getElementById("signed-out-reason");
const form = document.getElementById("signin-form");

function showReason() {
  const reason = new URLSearchParams(location.hash.slice(1)).get("reason");
  if (!reason) return;
  // Not a secret, but a reload or bookmark should not repeat an old message.
  history.replaceState(history.state, "", location.pathname + location.search);
  reasonBox.textContent = Object.hasOwn(REASONS, reason) ? REASONS[reason] : REASONS.default;
}

showReason();
window.addEventListener("hashchange", showReason);

const client = authClient();
// Signed in here or in another tab: the profile is where a signed-in visitor belongs.
client.subscribe((state) => { if (state.signedIn) navigate(PROFILE); });

handleForm(form, async ({ username_or_email, password }) => {
  try {
    await client.login(username_or_email.trim(), password);
  } catch (error) {
    if (error?.code !== "email_not_verified") throw error;
    showAlert(form, [`${error.body?.detail ?? "This email address is not verified yet."} `,
      "Open the link we emailed you, or ", link("/auth/verify", "ask for a new one"), "."]);
    return null;
  }
  navigate(PROFILE);
  return null;
});

await client.ready;
if (client.state.signedIn) navigate(PROFILE);
