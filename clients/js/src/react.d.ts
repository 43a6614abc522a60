// React bindings for authsvc's client (the "@authsvc/client/react" entry point).
import type { ReactElement, ReactNode } from "react";
import type { AuthClient, AuthState } from "./authsvc.js";

export interface UseAuthResult extends AuthState {
  /** false until the tab has asked the other tabs (and storage) for a session */
  ready: boolean;
}

/** The client's state, re-rendered on every change (sign-in, sign-out, session end). */
export function useAuth(client: AuthClient): UseAuthResult;

export interface RequireAuthProps {
  client: AuthClient;
  /** Shown while not ready and when signed out (default: nothing). */
  fallback?: ReactNode;
  /** Where to send a signed-out visitor (`{next}`: the current URL, encoded), as requireAuth(). */
  redirectTo?: string;
  children?: ReactNode;
}

/** Renders its children only when signed in. */
export function RequireAuth(props: RequireAuthProps): ReactElement;
