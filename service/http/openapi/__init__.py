"""The OpenAPI 3.1 document of the service, built from small helpers and the live settings."""

from __future__ import annotations

import importlib.metadata

from service.config import Settings
from service.http.openapi.admin import admin_paths
from service.http.openapi.auth_paths import account_paths, reset_paths, session_paths
from service.http.openapi.build import Json
from service.http.openapi.components import field_schemas, request_schemas, response_schemas
from service.http.openapi.error_responses import error_responses, error_schemas, headers
from service.http.openapi.mfa_paths import mfa_paths, mfa_schemas
from service.http.openapi.notes import cutover_note
from service.http.openapi.passkey_paths import passkey_paths, passkey_schemas
from service.http.openapi.security_paths import security_paths
from service.http.openapi.service_paths import service_paths


def version() -> str:
    """The installed package's version, or the project's own when it is not installed."""
    try:
        return importlib.metadata.version("authsvc")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def document(settings: Settings) -> Json:
    """The whole OpenAPI 3.1.0 document for `settings`."""
    s = settings
    return {
        "openapi": "3.1.0",
        "info": {"title": "authsvc", "version": version(),
                 "description": "Accounts, JWT access and refresh tokens, revocable logout and "
                                "password reset by email. Auth paths answer with or without "
                                "their trailing slash; error bodies follow Django REST "
                                "Framework's shapes."},
        "tags": [{"name": "auth", "description": "Accounts, sessions and passwords."},
                 {"name": "profile", "description": "The authenticated user."},
                 {"name": "sessions", "description": "Server-side sessions and account "
                                                     "security."},
                 {"name": "mfa", "description": "A second factor: an authenticator app, "
                                                "recovery codes, re-authentication."},
                 {"name": "passkeys", "description": "WebAuthn: sign in without a username, "
                                                     "a second factor, passwordless."},
                 {"name": "admin", "description": "User administration; role `admin` only."},
                 {"name": "docs", "description": "This document and its page."},
                 {"name": "browser", "description": "The JS client module and, with [ui] "
                                                    "enabled, the hosted pages."},
                 {"name": "health", "description": "For load balancers and monitors."}],
        "paths": {**account_paths(s), **reset_paths(s), **session_paths(s), **security_paths(s),
                  **mfa_paths(s), **passkey_paths(s), **admin_paths(),
                  **service_paths(s.ui)},
        "components": {
            "schemas": {**field_schemas(s), **request_schemas(s), **response_schemas(s),
                        **mfa_schemas(s), **passkey_schemas(s), **error_schemas()},
            "responses": error_responses(s),
            "headers": headers(),
            "securitySchemes": {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "An access token. Its `amr` and `auth_time` claims say how and "
                               "when the session last proved who it is; one with `scope: "
                               "mfa_enrolment` (a role in `[mfa] require_for_roles` without a "
                               "second factor) reaches only `profile/` (GET), `mfa/`, "
                               "`mfa/totp/`, `mfa/totp/confirm/` and `reauth/`, elsewhere 403 "
                               "`mfa_enrolment_required`." + cutover_note(s, "access tokens")}},
        },
    }
