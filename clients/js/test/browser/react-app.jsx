// A small React app on the React adapter, for tests/test_browser_react.py: real React and
// react-dom, bundled by the pinned esbuild while the tests run (never committed) and served
// from another origin than the API, as an app on its own domain is. StrictMode, and React's
// development build, so that React's own warnings reach the console, which fails the test.
//
// The query says which API (`api`: its base URL) and which view: "guard" (the default: a
// <RequireAuth> with a fallback, the state, a sign-in form and a sign-out button), "later" (the
// same, but the guard mounted by a button), "redirect" (a <RequireAuth> with redirectTo, alone)
// or "signin" (where "redirect" sends a signed-out visitor: the state and the forms again).
import { StrictMode, useState } from "react";
import { flushSync } from "react-dom";
import { createRoot } from "react-dom/client";
import { createAuthClient } from "../../src/authsvc.js";
import { RequireAuth, useAuth } from "../../src/react.js";

const params = new URLSearchParams(location.search);
const api = params.get("api");
const auth = createAuthClient({ baseUrl: api });

function Account() {
  const { ready, signedIn, user } = useAuth(auth);
  const said = !ready ? "Checking…" : signedIn ? `Signed in as ${user.username}` : "Signed out";
  return (
    <>
      <p role="status">{said}</p>
      <button type="button" onClick={() => auth.logout()}>Sign out</button>
    </>
  );
}

// Only ever rendered inside <RequireAuth>: a signed-out render would throw on `user`.
function Orders() {
  const { user } = useAuth(auth);
  return <h2>Orders of {user.username}</h2>;
}

function SignInForm() {
  const [error, setError] = useState("");
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setError("");
    try {
      await auth.login(form.get("username"), form.get("password"));
    } catch (e) {
      setError(e.message);
    }
  }
  return (
    <form onSubmit={submit}>
      <label>Username <input name="username" autoComplete="username" /></label>
      <label>
        Password <input name="password" type="password" autoComplete="current-password" />
      </label>
      <button>Sign in</button>
      <p role="alert">{error}</p>
    </form>
  );
}

function GuardView() {
  return (
    <>
      <Account />
      <SignInForm />
      <RequireAuth client={auth} fallback={<p>Sign in to see your orders</p>}>
        <Orders />
      </RequireAuth>
    </>
  );
}

// A guard mounted long after the client is ready, as on a route the app opens later.
function LaterView() {
  const [open, setOpen] = useState(false);
  return (
    <>
      <Account />
      <SignInForm />
      <button type="button" onClick={() => setOpen(true)}>Open orders</button>
      {open && (
        <RequireAuth client={auth} fallback={<p>Sign in to see your orders</p>}>
          <Orders />
        </RequireAuth>
      )}
    </>
  );
}

function RedirectView() {
  const signIn = `?${new URLSearchParams({ api, view: "signin" })}&next={next}`;
  return (
    <RequireAuth client={auth} redirectTo={signIn}>
      <Orders />
    </RequireAuth>
  );
}

function SignInView() {
  return (
    <>
      <h1>Sign in to continue</h1>
      <Account />
      <SignInForm />
    </>
  );
}

const views = { guard: GuardView, later: LaterView, redirect: RedirectView, signin: SignInView };
const View = views[params.get("view") || "guard"];

// The first render and its effects happen now, before another tab can answer this one's
// hello: the components always see a first state that is signed out and not yet ready, as
// they would if the other tabs were slow, so a guard that does not wait for `ready` is seen.
const root = createRoot(document.getElementById("root"));
flushSync(() =>
  root.render(
    <StrictMode>
      <main>
        <View />
      </main>
    </StrictMode>,
  ),
);
