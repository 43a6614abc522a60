"""The OpenAPI 3.1 document of the service, built from small helpers and the live settings."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from service.config import Settings
from service.core.identity import USERNAME_MAX
from service.http.admin_inputs import MAX_PAGE_SIZE, PAGE_SIZE, SEARCH_MAX
from service.http.inputs import (
    DEVICE_TOKEN_MAX,
    DISPLAY_NAME_MAX,
    RESET_TOKEN_MAX,
    ROLE_MAX,
    TOKEN_MAX,
)
from service.store.mail import EMAIL_MAX

Json = dict[str, Any]

AUTH = "/api/v1/auth/"
JSON = "application/json"
# Every moment the API answers with (http/render.py rfc3339).
UTC_TIME = "RFC 3339, in UTC with `Z`."

# Error responses by component name; several 401s differ only in when and which `code`.
STATUS = {"BadRequest": "400", "InvalidCredentials": "401", "TokenRefused": "401",
          "BearerUnauthorized": "401", "EmailNotVerified": "403", "Forbidden": "403",
          "NotFound": "404",
          "PayloadTooLarge": "413", "UnsupportedMediaType": "415",
          "TooManyRequests": "429", "ServerError": "500", "ServiceUnavailable": "503"}


def version() -> str:
    """The installed package's version, or the project's own when it is not installed."""
    try:
        return importlib.metadata.version("authsvc")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


def _ref(kind: str, name: str, **siblings: Any) -> Json:
    return {"$ref": f"#/components/{kind}/{name}", **siblings}


def _string(description: str = "", **limits: Any) -> Json:
    return {"type": "string", **({"description": description} if description else {}), **limits}


def _obj(properties: Json, required: list[str], description: str = "") -> Json:
    schema: Json = {"type": "object", "properties": properties, "required": required}
    return {**schema, "description": description} if description else schema


def _content(schema: Json, media_type: str = JSON) -> Json:
    return {media_type: {"schema": schema}}


def _response(description: str, schema: Json | None = None, **headers: Json) -> Json:
    answer: Json = {"description": description}
    if schema is not None:
        answer["content"] = _content(schema)
    if headers:
        answer["headers"] = headers
    return answer


def _token_response(description: str, schema_name: str) -> Json:
    """A success that carries tokens, hence never cached."""
    return _response(description, _ref("schemas", schema_name),
                     **{"Cache-Control": _ref("headers", "CacheControl")})


def _operation(op_id: str, summary: str, description: str, ok: Json, *, body: str | None = None,
               errors: tuple[str, ...] = (), bearer: bool = False, tag: str = "auth") -> Json:
    """One operation; a JSON body brings 413 and 415, every operation may answer 500."""
    op: Json = {"operationId": op_id, "tags": [tag], "summary": summary,
                "description": description}
    if body is not None:
        op["requestBody"] = {"required": True, "content": _content(_ref("schemas", body))}
        errors = (*errors, "PayloadTooLarge", "UnsupportedMediaType")
    if bearer:
        op["security"] = [{"bearerAuth": []}]
    failures = {STATUS[name]: _ref("responses", name) for name in (*errors, "ServerError")}
    op["responses"] = dict(sorted({**ok, **failures}.items()))
    return op


def _field_schemas(s: Settings) -> Json:
    p = s.passwords
    return {
        "Username": _string("Letters of any script, digits and `. _ - +`; no `@`. Unique after "
                            "NFKC normalisation and case folding.",
                            minLength=1, maxLength=USERNAME_MAX),
        "Email": _string("Stored lower-cased; unique after NFKC normalisation and case folding.",
                         format="email", minLength=1, maxLength=EMAIL_MAX),
        "NewPassword": _string(f"{p.min_length} to {p.max_length} characters, not a common "
                               "password, not the username or email; no composition rules "
                               "(NIST SP 800-63B). Never trimmed.",
                               minLength=p.min_length, maxLength=p.max_length),
        "DisplayName": _string(f"A string of 0 to {DISPLAY_NAME_MAX} characters; `null` is a 400.",
                               maxLength=DISPLAY_NAME_MAX),
        "Role": _string(f"One of the self-registrable roles; `{s.auth.default_role}` when omitted.",
                        enum=list(s.auth.self_register_roles), default=s.auth.default_role),
        "Jwt": _string("A JSON Web Token.", minLength=1, maxLength=TOKEN_MAX),
    }


def _request_schemas(s: Settings) -> Json:
    new_password = _ref("schemas", "NewPassword")
    password2 = _ref("schemas", "NewPassword", description="Must equal `password`.")
    return {
        "RegisterRequest": _obj({
            "username": _ref("schemas", "Username"), "email": _ref("schemas", "Email"),
            "password": new_password, "password2": password2,
            "display_name": _ref("schemas", "DisplayName"), "role": _ref("schemas", "Role"),
        }, ["username", "email", "password", "password2"]),
        "LoginRequest": _obj({
            "username_or_email": _string("An email when it contains `@`, else a username; "
                                         "any case.", minLength=1, maxLength=EMAIL_MAX),
            "password": _string(minLength=1, maxLength=s.passwords.max_length),
            "device_token": _string("The `device_token` of an earlier login on this device "
                                    "(or send the `authsvc_device` cookie): it keeps its own "
                                    "allowance while the account is locked for other devices.",
                                    maxLength=DEVICE_TOKEN_MAX),
        }, ["username_or_email", "password"]),
        "PasswordChangeRequest": _obj({
            "old_password": _string(minLength=1, maxLength=s.passwords.max_length),
            "password": new_password, "password2": password2,
        }, ["old_password", "password", "password2"]),
        "NotMeRequest": _obj({"token": _string("The token from the security alert's link.",
                                               minLength=1, maxLength=TOKEN_MAX)}, ["token"]),
        "VerifyEmailRequest": _obj({"token": _string("The token from the verification email's "
                                                     "link.", minLength=1, maxLength=TOKEN_MAX)},
                                   ["token"]),
        "LogoutRequest": _obj({"refresh_token": _ref("schemas", "Jwt")}, ["refresh_token"]),
        "PasswordResetRequest": _obj({"email": _ref("schemas", "Email")}, ["email"]),
        "ResendVerificationRequest": _obj({"email": _ref("schemas", "Email")}, ["email"]),
        "PasswordResetConfirmRequest": _obj({
            "token": _string("The token from the reset link.", minLength=1,
                             maxLength=RESET_TOKEN_MAX),
            "password": new_password, "password2": password2,
        }, ["token", "password", "password2"]),
        "AccountDeleteRequest": _obj({
            "password": _string("The account's current password.", minLength=1,
                                maxLength=s.passwords.max_length),
        }, ["password"]),
        "ProfileUpdate": _obj({"display_name": _ref("schemas", "DisplayName")}, [],
                              "Only `display_name` changes; other fields are ignored."),
        "TokenRefreshRequest": _obj({"refresh": _ref("schemas", "Jwt")}, ["refresh"]),
    }


def _response_schemas(s: Settings) -> Json:
    jwt = s.jwt
    access = _string(f"Access token (JWT), valid {jwt.access_ttl} s.")
    refresh = _string(f"Refresh token (JWT), valid {jwt.refresh_ttl} s from issue.")
    user = {"username": _string(), "email": _string(), "display_name": _string()}
    rotated = ["access", "refresh"] if jwt.rotate_refresh_tokens else ["access"]
    return {
        "RegisterResponse": _obj(
            {"user": _obj(user, list(user)), "refresh": refresh, "access": access},
            ["user"] if s.auth.require_email_verification else ["user", "refresh", "access"],
            "No tokens while `[auth] require_email_verification` is on (here: "
            f"{str(s.auth.require_email_verification).lower()}): log in once the email is "
            "verified."),
        "LoginResponse": _obj({"user": _obj({"username": _string(), "email": _string()},
                                          ["username", "email"]),
                              "refresh": refresh, "access": access,
                              "device_token": _string("Proof that this device signed in; also "
                                                      "set as the `authsvc_device` cookie.")},
                             ["user", "refresh", "access", "device_token"]),
        "TokenPair": _obj({"access": access, "refresh": refresh}, ["access", "refresh"]),
        "SessionList": {"type": "array", "items": _obj({
            "id": _string("The session id (the tokens' `sid` claim)."),
            "created": _string(UTC_TIME, format="date-time"),
            "last_used": _string(UTC_TIME, format="date-time"),
            "user_agent": _string(), "ip": _string(),
            "current": {"type": "boolean", "description": "The session of this access token."},
        }, ["id", "created", "last_used", "user_agent", "ip", "current"])},
        "Profile": _obj({**user, "role": _string("Extension beyond the original service.")},
                        [*user, "role"]),
        "TokenRefreshResponse": _obj(
            {"access": access, "refresh": _string("Successor refresh token with the same expiry; "
                                                  "sent only with `[jwt] rotate_refresh_tokens`.")},
            rotated, f"`[jwt] rotate_refresh_tokens` is {str(jwt.rotate_refresh_tokens).lower()}."),
        "Message": _obj({"message": _string()}, ["message"]),
        **_admin_schemas(s),
        "Health": _obj({"status": _string(const="ok")}, ["status"]),
    }


def _error_schemas() -> Json:
    return {
        "FieldErrors": {"type": "object", "minProperties": 1,
                        "description": "Messages by field name; errors not tied to a field "
                                       "under `non_field_errors`.",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "Detail": _obj({"detail": _string()}, ["detail"]),
        "AuthError": _obj({
            "detail": _string(),
            "code": _string("`token_not_valid` for every token refusal, `not_authenticated` when "
                            "no token is sent, `no_active_account` for wrong credentials."),
            "reason": _string("Why a token was refused (`token_expired`, `token_revoked`, "
                              "`password_changed`, `user_inactive`, `user_not_found`, "
                              "`bad_signature`, `wrong_token_type`, ...); "
                              "only with `token_not_valid`."),
        }, ["detail", "code"]),
    }


def _error_responses(s: Settings) -> Json:
    detail, auth_error = _ref("schemas", "Detail"), _ref("schemas", "AuthError")
    retry = {"Retry-After": _ref("headers", "RetryAfter")}
    return {
        "BadRequest": _response("Invalid input: messages by field, or `detail` when the body "
                                "cannot be parsed.",
                                {"oneOf": [_ref("schemas", "FieldErrors"), detail]}),
        "InvalidCredentials": _response("Wrong credentials or inactive account "
                                        "(`no_active_account`), always the same answer.",
                                        auth_error),
        "TokenRefused": _response("Malformed, forged, expired or revoked refresh token "
                                  "(`token_not_valid`).", auth_error),
        "BearerUnauthorized": _response("No token (`not_authenticated`) or a refused access "
                                        "token (`token_not_valid`).", auth_error,
                                        **{"WWW-Authenticate": _ref("headers", "WWWAuthenticate")}),
        "EmailNotVerified": _response("Right password, but the email is not verified yet "
                                      "(`code: email_not_verified`); only with "
                                      "`[auth] require_email_verification`.", auth_error),
        "Forbidden": _response("Authenticated, but not allowed: the caller's current role is "
                               "not `admin`.", detail),
        "NotFound": _response('Unknown resource (`{"detail": "Not found."}`), or a page past '
                              'the last (`{"detail": "Invalid page."}`).', detail),
        "PayloadTooLarge": _response(f"Body over {s.server.max_body_bytes} bytes "
                                     "(`[server] max_body_bytes`).", detail),
        "UnsupportedMediaType": _response("Body that is not JSON.", detail),
        "TooManyRequests": _response("Rate limit hit.", detail, **retry),
        "ServerError": _response("Server fault; never a stack trace.", detail),
        "ServiceUnavailable": _response("The database or Redis cannot be reached.", detail,
                                        **retry),
    }


def _headers() -> Json:
    return {
        "RetryAfter": {"description": "Seconds to wait before retrying.", "required": True,
                       "schema": {"type": "integer", "minimum": 1}},
        "WWWAuthenticate": {"description": "The Bearer challenge.", "required": True,
                            "schema": _string(examples=['Bearer realm="api"'])},
        "CacheControl": {"description": "Responses with tokens are never cached.",
                         "required": True, "schema": _string(const="no-store")},
    }


def _throttle(s: Settings, scope: str, per: str | None) -> tuple[str, tuple[str, ...]]:
    """A sentence on the rate limit and the 429 it brings, when rate limiting is on; `per`:
    what is limited besides the client IP (None: the client IP only)."""
    if not s.rate_limit.enabled:
        return "", ()
    rate = getattr(s.rate_limit, scope)
    also = f" and, separately, per {per}" if per else " (IPv6: per /64)"
    return f" Rate-limited to {rate} per client IP{also}.", ("TooManyRequests",)


def _mail_cap(s: Settings) -> str:
    return (f" At most {s.password_reset.max_mails_per_hour} such mails (reset links and "
            "verification links together) go to one address per hour; past that the answer "
            "is the same 200 and nothing is sent.")


def _account_paths(s: Settings) -> Json:
    roles = ", ".join(f"`{role}`" for role in s.auth.self_register_roles)
    register_note, register_429 = _throttle(s, "register", "email")
    login_note, login_429 = _throttle(s, "login", "submitted username or email (per device "
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
        AUTH + "register/": {"post": _operation(
            "register", "Create an account",
            f"`display_name` and `role` are optional; `role` is one of {roles} (never `admin`)."
            + register_note,
            {"201": _token_response("Created: the new user and a token pair.", "RegisterResponse")},
            body="RegisterRequest", errors=("BadRequest", *register_429, "ServiceUnavailable"))},
        AUTH + "login/": {"post": _operation(
            "login", "Log in",
            "A wrong password, an unknown user and an inactive account get the same 401."
            + login_note,
            {"200": _token_response("The user and a token pair.", "LoginResponse")},
            body="LoginRequest",
            errors=("BadRequest", "InvalidCredentials", *login_unverified, *login_429,
                    "ServiceUnavailable"))},
        AUTH + "logout/": {"post": _operation(
            "logout", "Revoke a refresh token",
            "The token stays refused until it would have expired. Any token that cannot be "
            "revoked now (malformed, forged, expired, already revoked, an access token) is a "
            "400 on `refresh_token`.",
            {"205": _response("Reset Content: revoked. The body is empty.")},
            body="LogoutRequest", errors=("BadRequest", "ServiceUnavailable"))},
    }


def _reset_paths(s: Settings) -> Json:
    note, too_many = _throttle(s, "password_reset", None)
    return {
        AUTH + "password-reset/": {"post": _operation(
            "passwordReset", "Ask for a password reset link",
            "Answers the same 200, about equally fast, whether or not the email is known; the "
            f"worker sends the link, valid {s.password_reset.ttl} s and single use." + note
            + _mail_cap(s),
            {"200": _response('`{"message": "Password reset link sent"}`',
                              _ref("schemas", "Message"))},
            body="PasswordResetRequest", errors=("BadRequest", *too_many, "ServiceUnavailable"))},
        AUTH + "password-reset/confirm/": {"post": _operation(
            "passwordResetConfirm", "Set a new password with a reset token",
            "Every earlier refresh token and reset token of the user is refused afterwards. "
            "An unknown, used or expired token is a 400 on `token`.",
            {"200": _response('`{"message": "Password has been reset"}`',
                              _ref("schemas", "Message"))},
            body="PasswordResetConfirmRequest", errors=("BadRequest", "ServiceUnavailable"))},
    }


def _session_paths(s: Settings) -> Json:
    rotation = "on" if s.jwt.rotate_refresh_tokens else "off"
    profile = {"200": _response("The profile; `role` is an extension.", _ref("schemas", "Profile"))}
    return {
        AUTH + "profile/": {
            "get": _operation("getProfile", "Read the profile", "The authenticated user.",
                              profile, errors=("BearerUnauthorized", "ServiceUnavailable"),
                              bearer=True, tag="profile"),
            "patch": _operation(
                "updateProfile", "Change the display name",
                "Changes `display_name` only; `username`, `email`, `role` and unknown fields "
                "are ignored. `{}` changes nothing; an empty body (zero bytes) is a 400.",
                profile, body="ProfileUpdate", bearer=True, tag="profile",
                errors=("BadRequest", "BearerUnauthorized", "ServiceUnavailable")),
            "delete": _operation(
                "deleteAccount", "Delete my account",
                "Needs the current password (a wrong one is a 400 on `password`). A hard "
                "delete: the account is gone, every session and token of it is refused at "
                "once (`reason: user_not_found` or `session_ended`), pending reset, "
                "verification and \"this wasn't me\" links do nothing, and the username and "
                "email are free again. The id is never given to another account. 429 "
                "(Retry-After: 1) while another password check of the same account is in "
                "progress." + _reauth_note(s),
                {"204": _response("No Content: the account is gone. The body is empty.")},
                body="AccountDeleteRequest", bearer=True, tag="profile",
                errors=("BadRequest", "TooManyRequests", "BearerUnauthorized",
                        "ServiceUnavailable"))},
        AUTH + "token/refresh/": {"post": _operation(
            "refreshToken", "Get a new access token",
            "Returns `refresh` too only when `[jwt] rotate_refresh_tokens` is on (here: "
            f"{rotation}); the old refresh token is then revoked. A refresh token's expiry is "
            "fixed at issue.",
            {"200": _token_response("A new access token.", "TokenRefreshResponse")},
            body="TokenRefreshRequest",
            errors=("BadRequest", "TokenRefused", "ServiceUnavailable"))},
    }


def _reauth_note(s: Settings) -> str:
    note = ""
    if s.rate_limit.enabled:
        note += f" Each check spends the client IP's login budget ({s.rate_limit.login})."
    if s.lockout.enabled:
        note += (f" After {s.lockout.max_failures} wrong passwords within {s.lockout.window} s "
                 "the account's checks are refused (429) until the window ends.")
    return note


def _security_paths(s: Settings) -> Json:
    bearer_errors = ("BearerUnauthorized", "ServiceUnavailable")
    return {
        AUTH + "sessions/": {"get": _operation(
            "listSessions", "List my sessions",
            "Every live session of the caller (one per login), the current one marked.",
            {"200": _response("The sessions.", _ref("schemas", "SessionList"))},
            errors=bearer_errors, bearer=True, tag="sessions")},
        AUTH + "sessions/{sid}/": {"delete": {
            **_operation("endSession", "End one of my sessions",
                         "Its access and refresh tokens are refused at once; another user's "
                         "session id is a 404.",
                         {"204": _response("Ended. The body is empty.")},
                         errors=("NotFound", *bearer_errors), bearer=True, tag="sessions"),
            "parameters": [{"name": "sid", "in": "path", "required": True,
                            "schema": _string()}]}},
        AUTH + "logout-all/": {"post": _operation(
            "logoutAll", "End all my sessions",
            "Every session of the caller ends; all their tokens are refused at once.",
            {"205": _response("Reset Content. The body is empty.")},
            errors=bearer_errors, bearer=True, tag="sessions")},
        AUTH + "password/change/": {"post": _operation(
            "changePassword", "Change my password",
            "Needs the current password. Every other session ends and every earlier token is "
            "refused; this session goes on with the fresh pair returned. 429 (Retry-After: 1) "
            "while another password check of the same account is in progress."
            + _reauth_note(s),
            {"200": _token_response("A fresh token pair for this session.", "TokenPair")},
            body="PasswordChangeRequest",
            errors=("BadRequest", "TooManyRequests", *bearer_errors), bearer=True,
            tag="sessions")},
        AUTH + "verify-email/": {"post": _operation(
            "verifyEmail", "Confirm an email address",
            "With the token from the verification email sent at registration (when "
            "`[auth] verify_emails` is on). Single use; an unknown, used or expired token is a "
            "400 on `token`.",
            {"200": _response('`{"message": "Email verified"}`', _ref("schemas", "Message"))},
            body="VerifyEmailRequest", errors=("BadRequest", "ServiceUnavailable"),
            tag="sessions")},
        AUTH + "verify-email/resend/": {"post": _operation(
            "resendVerification", "Send the verification email again",
            "Answers the same 200 whether or not the email is known or already verified."
            + _throttle(s, "password_reset", None)[0] + _mail_cap(s),
            {"200": _response('`{"message": "Verification email sent"}`',
                              _ref("schemas", "Message"))},
            body="ResendVerificationRequest",
            errors=("BadRequest", *_throttle(s, "password_reset", None)[1],
                    "ServiceUnavailable"), tag="sessions")},
        AUTH + "security/not-me/": {"post": _operation(
            "notMe", "This wasn't me",
            "The confirming POST behind the link in a security alert (a sign-in from a new "
            "device, or a refresh token used twice): ends every session of the account and "
            "emails a password reset link. The link itself (a GET a mail scanner may follow) "
            "does nothing. Single use; an unknown or used token is a 400 on `token`."
            + _throttle(s, "password_reset", None)[0],
            {"200": _response("Done.", _ref("schemas", "Message"))},
            body="NotMeRequest",
            errors=("BadRequest", *_throttle(s, "password_reset", None)[1],
                    "ServiceUnavailable"), tag="sessions")},
    }


def _admin_schemas(s: Settings) -> Json:
    user = {
        "id": {"type": "integer", "minimum": 1,
               "description": "The user's id: the tokens' `sub` claim, as an integer."},
        "username": _string(), "email": _string(), "display_name": _string(),
        "role": _string(maxLength=ROLE_MAX), "is_active": {"type": "boolean"},
        "date_joined": _string(UTC_TIME, format="date-time"),
    }
    link = {"type": ["string", "null"], "format": "uri"}
    return {
        "AdminUser": _obj(user, list(user)),
        "UserPage": _obj({
            "count": {"type": "integer", "minimum": 0,
                      "description": "Users matching the filters, on every page."},
            "next": {**link, "description": "Absolute URL of the next page, or null."},
            "previous": {**link, "description": "Absolute URL of the previous page, or null."},
            "results": {"type": "array", "items": _ref("schemas", "AdminUser")},
        }, ["count", "next", "previous", "results"], "Django REST Framework's page shape."),
        "AdminUserUpdate": _obj({
            "role": _string("One of the known roles (`admin`, `[auth] self_register_roles`, "
                            "`[auth] extra_roles`), else a 400 on `role`; changing it "
                            "refuses every earlier token of the user.",
                            minLength=1, maxLength=ROLE_MAX, enum=list(s.auth.known_roles())),
            "is_active": {"type": "boolean",
                          "description": "`false` refuses every token of the user at once and "
                                         "blocks login; `true` lets them log in again."},
        }, [], "Both optional; other fields are ignored. `{}` changes nothing."),
    }


def _query(name: str, description: str, schema: Json) -> Json:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _admin_operation(op_id: str, summary: str, description: str, ok: Json, *,
                     body: str | None = None, errors: tuple[str, ...] = (),
                     parameters: list[Json] | None = None) -> Json:
    errors = ("BearerUnauthorized", "Forbidden", *errors, "ServiceUnavailable")
    op = _operation(op_id, summary, description, ok, body=body, errors=errors, bearer=True,
                    tag="admin")
    if parameters:
        op["parameters"] = parameters
    return op


def _admin_paths() -> Json:
    user_id = [{"name": "id", "in": "path", "required": True,
                "description": "The user's id; anything not numeric is a 404.",
                "schema": {"type": "integer", "minimum": 1}}]
    listing = [
        _query("page", "1-based page number.", {"type": "integer", "minimum": 1, "default": 1}),
        _query("page_size", "Users per page.", {"type": "integer", "minimum": 1,
                                                "maximum": MAX_PAGE_SIZE, "default": PAGE_SIZE}),
        _query("role", "Only users with this role.", _string(maxLength=ROLE_MAX)),
        _query("is_active", "Only active (`true`) or inactive (`false`) users.",
               {"type": "string", "enum": ["true", "false", "1", "0"]}),
        _query("search", "Case-insensitive substring of the username, email or display name; "
               "`%` and `_` are literal.", _string(maxLength=SEARCH_MAX)),
    ]
    user = {"200": _response("The user.", _ref("schemas", "AdminUser"))}
    return {
        AUTH + "users/": {"get": _admin_operation(
            "listUsers", "List users",
            "Ordered by id, paged in Django REST Framework's shape. A bad query value is a 400 "
            "on its name; an empty value applies no filter.",
            {"200": _response("One page of users.", _ref("schemas", "UserPage"))},
            errors=("BadRequest", "NotFound"), parameters=listing)},
        AUTH + "users/{id}/": {
            "get": _admin_operation("getUser", "Read a user", "Any user, active or not.", user,
                                    errors=("NotFound",), parameters=user_id),
            "patch": _admin_operation(
                "updateUser", "Change a user's role or active state",
                "Changing `role` or deactivating refuses every existing access and refresh "
                "token of the user at once. An admin cannot deactivate or demote themselves "
                "(400 `non_field_errors`).",
                user, body="AdminUserUpdate", errors=("BadRequest", "NotFound"),
                parameters=user_id),
            "delete": _admin_operation(
                "deleteUser", "Delete a user's account",
                "The same hard delete as `DELETE profile/`, without a password: every session "
                "and token of the user is refused at once, the username and email are free "
                "again. An admin cannot delete themselves here (400 `non_field_errors`).",
                {"204": _response("No Content: the account is gone. The body is empty.")},
                errors=("BadRequest", "NotFound"), parameters=user_id)},
        AUTH + "users/{id}/revoke-sessions/": {"post": _admin_operation(
            "revokeUserSessions", "Refuse every token of a user",
            "Every access and refresh token issued to the user so far is refused at once; "
            "the user can log in again.",
            {"204": _response("No Content: done. The body is empty.")},
            errors=("NotFound",), parameters=user_id)},
    }


def _service_paths() -> Json:
    html = {"200": {"description": "A page rendering this document.",
                    "content": _content({"type": "string"}, "text/html")}}
    health = {"200": _response("Database and Redis answer.", _ref("schemas", "Health")),
              "503": _response("A backing service cannot be reached.", _ref("schemas", "Detail"))}
    return {
        "/api/v1/openapi.json": {"get": _operation(
            "getOpenApi", "This document", "OpenAPI 3.1, reflecting the running configuration.",
            {"200": _response("The document.", {"type": "object"})}, tag="docs")},
        "/api/v1/docs": {"get": _operation("getDocs", "API documentation page",
                                           "Renders this document.", html, tag="docs")},
        "/healthz": {"get": _operation("getHealth", "Health check",
                                       "Checks the database and Redis.", health, tag="health")},
    }


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
                 {"name": "admin", "description": "User administration; role `admin` only."},
                 {"name": "docs", "description": "This document and its page."},
                 {"name": "health", "description": "For load balancers and monitors."}],
        "paths": {**_account_paths(s), **_reset_paths(s), **_session_paths(s), **_security_paths(s),
                  **_admin_paths(),
                  **_service_paths()},
        "components": {
            "schemas": {**_field_schemas(s), **_request_schemas(s), **_response_schemas(s),
                        **_error_schemas()},
            "responses": _error_responses(s),
            "headers": _headers(),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "bearerFormat": "JWT"}},
        },
    }
