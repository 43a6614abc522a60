// Ask for a reset link. The answer is the same whether or not the address has an account.
import { authClient, handleForm } from "./ui.js";

const client = authClient();

handleForm(document.getElementById("forgot-form"), async ({ email }) => {
  await client.requestPasswordReset(email.trim());
  return `If the address belongs to an account, a link to set a new password is on its way to ${email.trim()}. Check your inbox (and the spam folder).`;
});
