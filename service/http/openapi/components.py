"""The document's schemas of fields, request bodies and success bodies."""

from __future__ import annotations

from service.config import Settings
from service.core.identity import USERNAME_MAX
from service.http.inputs import DEVICE_TOKEN_MAX, DISPLAY_NAME_MAX, RESET_TOKEN_MAX, TOKEN_MAX
from service.http.openapi.admin import admin_schemas
from service.http.openapi.build import UTC_TIME, Json, obj, ref, string
from service.store.mail import EMAIL_MAX


def field_schemas(s: Settings) -> Json:
    """The fields several requests share, with the limits of `s`."""
    p = s.passwords
    return {
        "Username": string("Letters of any script, digits and `. _ - +`; no `@`. Unique after "
                           "NFKC normalisation and case folding.",
                           minLength=1, maxLength=USERNAME_MAX),
        "Email": string("Stored lower-cased; unique after NFKC normalisation and case folding.",
                        format="email", minLength=1, maxLength=EMAIL_MAX),
        "NewPassword": string(f"{p.min_length} to {p.max_length} characters, not a common "
                              "password, not the username or email; no composition rules "
                              "(NIST SP 800-63B). Never trimmed.",
                              minLength=p.min_length, maxLength=p.max_length),
        "DisplayName": string(f"A string of 0 to {DISPLAY_NAME_MAX} characters; `null` is a 400.",
                              maxLength=DISPLAY_NAME_MAX),
        "Role": string(f"One of the self-registrable roles; `{s.auth.default_role}` when omitted.",
                       enum=list(s.auth.self_register_roles), default=s.auth.default_role),
        "Jwt": string("A JSON Web Token.", minLength=1, maxLength=TOKEN_MAX),
    }


def request_schemas(s: Settings) -> Json:
    """One schema per request body."""
    new_password = ref("schemas", "NewPassword")
    password2 = ref("schemas", "NewPassword", description="Must equal `password`.")
    return {
        "RegisterRequest": obj({
            "username": ref("schemas", "Username"), "email": ref("schemas", "Email"),
            "password": new_password, "password2": password2,
            "display_name": ref("schemas", "DisplayName"), "role": ref("schemas", "Role"),
        }, ["username", "email", "password", "password2"]),
        "LoginRequest": obj({
            "username_or_email": string("An email when it contains `@`, else a username; "
                                        "any case.", minLength=1, maxLength=EMAIL_MAX),
            "password": string(minLength=1, maxLength=s.passwords.max_length),
            "device_token": string("The `device_token` of an earlier login on this device "
                                   "(or send the `authsvc_device` cookie): it keeps its own "
                                   "allowance while the account is locked for other devices.",
                                   maxLength=DEVICE_TOKEN_MAX),
        }, ["username_or_email", "password"]),
        "PasswordChangeRequest": obj({
            "old_password": string(minLength=1, maxLength=s.passwords.max_length),
            "password": new_password, "password2": password2,
        }, ["old_password", "password", "password2"]),
        "NotMeRequest": obj({"token": string("The token from the security alert's link.",
                                             minLength=1, maxLength=TOKEN_MAX)}, ["token"]),
        "VerifyEmailRequest": obj({"token": string("The token from the verification email's "
                                                   "link.", minLength=1, maxLength=TOKEN_MAX)},
                                  ["token"]),
        "LogoutRequest": obj({"refresh_token": ref("schemas", "Jwt")}, ["refresh_token"]),
        "PasswordResetRequest": obj({"email": ref("schemas", "Email")}, ["email"]),
        "ResendVerificationRequest": obj({"email": ref("schemas", "Email")}, ["email"]),
        "PasswordResetConfirmRequest": obj({
            "token": string("The token from the reset link.", minLength=1,
                            maxLength=RESET_TOKEN_MAX),
            "password": new_password, "password2": password2,
        }, ["token", "password", "password2"]),
        "AccountDeleteRequest": obj({
            "password": string("The account's current password. A passwordless account "
                               "(passkeys only) sends none: a recent sign-in is its proof.",
                               minLength=1, maxLength=s.passwords.max_length),
        }, ["password"]),
        "ProfileUpdate": obj({"display_name": ref("schemas", "DisplayName")}, [],
                             "Only `display_name` changes; other fields are ignored."),
        "TokenRefreshRequest": obj({"refresh": ref("schemas", "Jwt")}, ["refresh"]),
    }


def response_schemas(s: Settings) -> Json:
    """The success bodies, the admin API's included."""
    jwt = s.jwt
    access = string(f"Access token (JWT), valid {jwt.access_ttl} s.")
    refresh = string(f"Refresh token (JWT), valid {jwt.refresh_ttl} s from issue.")
    user = {"username": string(), "email": string(), "display_name": string()}
    rotated = ["access", "refresh"] if jwt.rotate_refresh_tokens else ["access"]
    return {
        "RegisterResponse": obj(
            {"user": obj(user, list(user)), "refresh": refresh, "access": access},
            ["user"] if s.auth.require_email_verification else ["user", "refresh", "access"],
            "No tokens while `[auth] require_email_verification` is on (here: "
            f"{str(s.auth.require_email_verification).lower()}): log in once the email is "
            "verified."),
        "LoginResponse": obj({"user": obj({"username": string(), "email": string()},
                                          ["username", "email"]),
                              "refresh": refresh, "access": access,
                              "device_token": string("Proof that this device signed in; also "
                                                     "set as the `authsvc_device` cookie.")},
                             ["user", "refresh", "access", "device_token"]),
        "TokenPair": obj({"access": access, "refresh": refresh}, ["access", "refresh"]),
        "SessionList": {"type": "array", "items": obj({
            "id": string("The session id (the tokens' `sid` claim)."),
            "created": string(UTC_TIME, format="date-time"),
            "last_used": string(UTC_TIME, format="date-time"),
            "user_agent": string(), "ip": string(),
            "current": {"type": "boolean", "description": "The session of this access token."},
        }, ["id", "created", "last_used", "user_agent", "ip", "current"])},
        "Profile": obj({**user, "role": string("Extension beyond the original service.")},
                       [*user, "role"]),
        "TokenRefreshResponse": obj(
            {"access": access, "refresh": string("Successor refresh token with the same expiry; "
                                                 "sent only with `[jwt] rotate_refresh_tokens`.")},
            rotated, f"`[jwt] rotate_refresh_tokens` is {str(jwt.rotate_refresh_tokens).lower()}."),
        "Message": obj({"message": string()}, ["message"]),
        **admin_schemas(s),
        "Health": obj({"status": string(const="ok")}, ["status"]),
    }
