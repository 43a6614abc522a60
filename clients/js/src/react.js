// React bindings for authsvc's client, in their own entry point so that the core never
// imports React. No JSX: the file runs as it is, with no build step.
import { createElement, Fragment, useEffect, useState, useSyncExternalStore } from "react";

// Clients whose `ready` has settled. A promise cannot be read synchronously: without this, a
// component mounted long after (a guarded route opened later) would start not ready, and
// <RequireAuth> would flash its fallback to a signed-in user on every mount.
const settled = new WeakSet();

/** The client's state ({signedIn, user}) plus `ready`, re-rendered on every change. */
export function useAuth(client) {
  const snapshot = () => client.state;
  const state = useSyncExternalStore(client.subscribe, snapshot, snapshot);
  const [, rerender] = useState(0);
  const ready = settled.has(client);
  useEffect(() => {
    // Rendered not ready, so render again once it is (maybe at once: it may have settled since).
    if (ready) return;
    let mounted = true;
    client.ready.then(() => {
      settled.add(client);
      if (mounted) rerender((n) => n + 1);
    });
    return () => {
      mounted = false;
    };
  }, [client, ready]);
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
