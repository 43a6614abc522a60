"""The account, password reset, profile and token refresh paths."""

from __future__ import annotations

from service.config import Settings
from service.http.openapi.build import AUTH, Json, operation, ref, response, token_response
from service.http.openapi.notes import cutover_note, mail_cap, reauth_note, throttle


def account_paths(s: Settings) -> Json:
    """Register, log in, log out."""
    roles = ", ".join(f"`{role}`" for role in s.auth.self_register_roles)
    register_note, register_429 = throttle(s, "register", "email")
    login_note, login_429 = throttle(s, "login", "submitted username or email (per device "
                                     "instead for a valid `device_token` of that account)")
    login_unverified = ("EmailNotVerified",)  # only with [auth] require_email_verification
    if s.lockout.enabled:
        login_note += (f" After {s.lockout.max_failures} failures within {s.lockout.window} s an "
                       "identifier is locked (429) for devices that never signed in to it; a "
                       "known device (`device_token`) keeps its own allowance. Past the "
                       "account's own count (its username and email together) the other "
                       "identifier still answers 401, whatever the password.")
        login_429 = ("TooManyRequests",)
    return {
        AUTH + "register/": {"post": operation(
            "register", "Create an account",
            f"`display_name` and `role` are optional; `role` is one of {roles} (never `admin`)."
            + register_note,
            {"201": token_response("Created: the new user and a token pair.", "RegisterResponse")},
            body="RegisterRequest", errors=("BadRequest", *register_429, "ServiceUnavailable"))},
        AUTH + "login/": {"post": operation(
            "login", "Log in",
            "A wrong password, an unknown user and an inactive account get the same 401. An "
            "account with a second factor answers the right password with `mfa_required` "
            "and an `mfa_token` instead of tokens: `login/mfa/` finishes the sign-in (a wrong "
            "password never tells whether the account has one)." + login_note,
            {"200": response("The user and a token pair; or, for an account with a second "
                             "factor, what `login/mfa/` needs.",
                             {"oneOf": [ref("schemas", "LoginResponse"),
                                        ref("schemas", "MfaRequired")]},
                             **{"Cache-Control": ref("headers", "CacheControl")})},
            body="LoginRequest",
            errors=("BadRequest", "InvalidCredentials", *login_unverified, *login_429,
                    "ServiceUnavailable"))},
        AUTH + "logout/": {"post": operation(
            "logout", "Revoke a refresh token",
            "The token stays refused until it would have expired. Any token that cannot be "
            "revoked now (malformed, forged, expired, already revoked, an access token) is a "
            "400 on `refresh_token`." + cutover_note(s, "refresh tokens"),
            {"205": response("Reset Content: revoked. The body is empty.")},
            body="LogoutRequest", errors=("BadRequest", "ServiceUnavailable"))},
    }


def reset_paths(s: Settings) -> Json:
    """Ask for a password reset link and set a new password with it."""
    note, too_many = throttle(s, "password_reset", None)
    return {
        AUTH + "password-reset/": {"post": operation(
            "passwordReset", "Ask for a password reset link",
            "Answers the same 200, about equally fast, whether or not the email is known; the "
            f"worker sends the link, valid {s.password_reset.ttl} s and single use." + note
            + mail_cap(s),
            {"200": response('`{"message": "Password reset link sent"}`',
                             ref("schemas", "Message"))},
            body="PasswordResetRequest", errors=("BadRequest", *too_many, "ServiceUnavailable"))},
        AUTH + "password-reset/confirm/": {"post": operation(
            "passwordResetConfirm", "Set a new password with a reset token",
            "Every earlier refresh token and reset token of the user is refused afterwards. "
            "An unknown, used or expired token is a 400 on `token`.",
            {"200": response('`{"message": "Password has been reset"}`',
                             ref("schemas", "Message"))},
            body="PasswordResetConfirmRequest", errors=("BadRequest", "ServiceUnavailable"))},
    }


def session_paths(s: Settings) -> Json:
    """The profile (read, change, delete) and the token refresh."""
    rotation = "on" if s.jwt.rotate_refresh_tokens else "off"
    profile = {"200": response("The profile; `role` is an extension.", ref("schemas", "Profile"))}
    return {
        AUTH + "profile/": {
            "get": operation("getProfile", "Read the profile", "The authenticated user.",
                             profile, errors=("BearerUnauthorized", "ServiceUnavailable"),
                             bearer=True, tag="profile"),
            "patch": operation(
                "updateProfile", "Change the display name",
                "Changes `display_name` only; `username`, `email`, `role` and unknown fields "
                "are ignored. `{}` changes nothing; an empty body (zero bytes) is a 400.",
                profile, body="ProfileUpdate", bearer=True, tag="profile",
                errors=("BadRequest", "BearerUnauthorized", "ServiceUnavailable")),
            "delete": operation(
                "deleteAccount", "Delete my account",
                "Needs the current password (a wrong one is a 400 on `password`). A hard "
                "delete: the account is gone, every session and token of it is refused at "
                "once (`reason: user_not_found` or `session_ended`), pending reset, "
                "verification and \"this wasn't me\" links do nothing, and the username and "
                "email are free again. The id is never given to another account. 429 "
                "(Retry-After: 1) while another password check of the same account is in "
                "progress. An account with a second factor also needs a recent sign-in "
                "(403 `step_up_required`, see `reauth/`)." + reauth_note(s),
                {"204": response("No Content: the account is gone. The body is empty.")},
                body="AccountDeleteRequest", bearer=True, tag="profile",
                errors=("BadRequest", "TooManyRequests", "BearerUnauthorized", "StepUpRequired",
                        "ServiceUnavailable"))},
        AUTH + "token/refresh/": {"post": operation(
            "refreshToken", "Get a new access token",
            "Returns `refresh` too only when `[jwt] rotate_refresh_tokens` is on (here: "
            f"{rotation}); the old refresh token is then revoked. A refresh token's expiry is "
            "fixed at issue." + cutover_note(s, "refresh tokens"),
            {"200": token_response("A new access token.", "TokenRefreshResponse")},
            body="TokenRefreshRequest",
            errors=("BadRequest", "TokenRefused", "ServiceUnavailable"))},
    }

