// React bindings for authsvc's client, in their own entry point so that the core never
// imports React. No JSX: the file runs as it is, with no build step.
import { createElement, Fragment, useEffect, useState, useSyncExternalStore } from "react";

/** The client's state ({signedIn, user}) plus `ready`, re-rendered on every change. */
export function useAuth(client) {
  const snapshot = () => client.state;
  const state = useSyncExternalStore(client.subscribe, snapshot, snapshot);
  const [ready, setReady] = useState(false);
  useEffect(() => {
    let mounted = true;
    client.ready.then(() => mounted && setReady(true));
    return () => {
      mounted = false;
    };
  }, [client]);
  return { ...state, ready };
}

/** Renders `children` when signed in, else `fallback` (also while the tab is still asking the
 * others for a session); with `redirectTo`, a signed-out visitor is sent there. */
export function RequireAuth({ client, fallback = null, redirectTo, children }) {
  const { ready, signedIn } = useAuth(client);
  useEffect(() => {
    // requireAuth() redirects (and never settles) or rejects: nothing to catch but that.
    if (ready && !signedIn && redirectTo) client.requireAuth({ redirectTo }).catch(() => {});
  }, [client, ready, signedIn, redirectTo]);
  return createElement(Fragment, null, ready && signedIn ? children : fallback);
}
