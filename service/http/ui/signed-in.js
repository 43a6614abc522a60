// What the pages behind sign-in (profile, sessions) share: the profile or off to sign in,
// the page shown once its data is in, and the navigation with its two ways to sign out.
import { clearMessages, describe, endingSession, navigate, showAlert, SIGNIN } from "./ui.js";

/** Shows a page as ready once its data is in (it is hidden meanwhile, so nobody sees an
 * empty profile or acts on a form that is not wired yet). */
export function ready(main = document.querySelector("main")) {
  main.removeAttribute("aria-busy");
  for (const element of main.querySelectorAll("[data-when-ready]")) element.hidden = false;
}

export function setUpNav(client) {
  const nav = document.querySelector("nav");
  const run = async (button, call, reason) => {
    clearMessages();
    button.disabled = true;
    try {
      await endingSession(reason, call);
    } catch (error) {
      button.disabled = false;
      showAlert(nav, describe(error));
    }
  };
  const signOut = nav.querySelector("[data-sign-out]");
  const everywhere = nav.querySelector("[data-sign-out-everywhere]");
  signOut.addEventListener("click", () => run(signOut, () => client.logout(), "signed_out"));
  everywhere.addEventListener("click", () => run(everywhere, () => client.logoutAll(), "signed_out_everywhere"));
}

/** The profile of the signed-in user, or off to the sign-in page (a session that ended on
 * the way there has already sent the page off with its reason). A failure that is not
 * "signed out" (the server down, say) is said on the page with a way to try again. */
export async function signedInProfile(client) {
  try {
    return await client.requireAuth();
  } catch (error) {
    if (error?.status === 401) navigate(SIGNIN);
    else {
      const main = document.querySelector("main");
      const retry = document.createElement("button");
      retry.type = "button";
      retry.textContent = "Try again";
      retry.addEventListener("click", () => location.reload());
      main.removeAttribute("aria-busy");
      showAlert(main.querySelector("[data-page-alert]"), [describe(error), " ", retry]);
    }
    return null;
  }
}
