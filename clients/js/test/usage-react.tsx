// Type-checked only: the React entry point as an app uses it.
import type { ReactElement } from "react";
import { createAuthClient } from "@authsvc/client";
import { RequireAuth, useAuth } from "@authsvc/client/react";
import type { RequireAuthProps, UseAuthResult } from "@authsvc/client/react";

const auth = createAuthClient({ baseUrl: "https://auth.example.com/api/v1/auth/" });

function Account(): ReactElement {
  const { ready, signedIn, user }: UseAuthResult = useAuth(auth);
  if (!ready) return <p>Loading</p>;
  return <p>{signedIn ? `Signed in as ${user?.username ?? "?"}` : "Signed out"}</p>;
}

const props: RequireAuthProps = { client: auth, fallback: <p>Sign in first</p>, redirectTo: "/auth/signin?next={next}" };

export function App(): ReactElement {
  return (
    <>
      <RequireAuth {...props}><Account /></RequireAuth>
      <RequireAuth client={auth}>{"plain text child"}</RequireAuth>
    </>
  );
}
