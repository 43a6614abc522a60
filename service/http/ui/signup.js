// Create an account; signed in at once, unless the service wants the address verified first.
import { authClient, handleForm, navigate, PROFILE } from "./ui.js";

const form = document.getElementById("signup-form");
const client = authClient();

handleForm(form, async ({ username, email, display_name, password, password2 }) => {
  const input = { username: username.trim(), email: email.trim(), password, password2 };
  if (display_name.trim()) input.display_name = display_name.trim();
  const { signedIn } = await client.register(input);
  if (signedIn) {
    navigate(PROFILE);
    return null;
  }
  form.reset();
  return `Your account is created. Check your email: we sent a link to ${input.email} to verify it, then you can sign in.`;
});

await client.ready;
if (client.state.signedIn) navigate(PROFILE);
