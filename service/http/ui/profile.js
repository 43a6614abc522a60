// The signed-in user's profile: display name, password change, two-factor authentication
// (two-factor.js), passkeys (passkeys.js), account deletion. Password change and deletion may
// need a recent sign-in (step-up.js).
import { setUpPasskeys } from "./passkeys.js";
import { ready, setUpNav, signedInProfile } from "./signed-in.js";
import { withStepUp } from "./step-up.js";
import { setUpTwoFactor } from "./two-factor.js";
import { authClient, endingSession, handleForm, setFieldError } from "./ui.js";

const client = authClient({ signedInOnly: true });
setUpNav(client);

const profile = await signedInProfile(client);
if (profile) {
  await Promise.all([setUpTwoFactor(client), setUpPasskeys(client)]);
  show(profile);
}

function show({ username, email, display_name }) {
  document.getElementById("profile-username").textContent = username;
  document.getElementById("profile-email").textContent = email;
  document.getElementById("profile-display-name").value = display_name ?? "";
  ready();
}

handleForm(document.getElementById("display-name-form"), async ({ display_name }) => {
  show(await client.updateProfile({ display_name: display_name.trim() }));
  return "Saved.";
});

handleForm(document.getElementById("password-form"), async ({ old_password, password, password2 }, form) => {
  await withStepUp(client, () => client.changePassword(old_password, password, password2));
  form.reset();
  return "Your password is changed. Every other session of your account has ended.";
});

handleForm(document.getElementById("delete-form"), async ({ password, confirm }, form) => {
  // The explicit confirmation step: a box to tick, not a window.confirm() dialog.
  if (!confirm) {
    setFieldError(form.elements.namedItem("confirm"), "Tick this box to confirm that the account is to be deleted.");
    return null;
  }
  await endingSession("account_deleted", () => withStepUp(client, () => client.deleteAccount(password)));
  return null;
});
