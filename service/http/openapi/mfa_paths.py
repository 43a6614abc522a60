"""The second factor's schemas and paths: the MFA sign-in step, enrolment, recovery codes,
re-authentication (step-up)."""

from __future__ import annotations

from service.config import Settings
from service.core.mfa_crypto import RECOVERY_CODES
from service.http.inputs import CODE_MAX, MFA_TOKEN_MAX
from service.http.openapi.build import (
    AUTH,
    UTC_TIME,
    Json,
    obj,
    operation,
    ref,
    response,
    string,
    token_response,
)
from service.http.openapi.notes import reauth_note, throttle

METHOD = string("`totp` (a 6-digit code of the authenticator app) or `recovery_code` "
                "(`xxxx-xxxx-xxxx`; case, spaces and dashes do not matter).",
                enum=["totp", "recovery_code"])
CODE = string("The code.", minLength=1, maxLength=CODE_MAX)
CODES_SHOWN = ("Recovery codes, shown this once: each signs in once instead of a code of the "
               "authenticator.")
CODE_LIST: Json = {"type": "array", "items": string(), "minItems": 0,
                   "maxItems": RECOVERY_CODES, "description": CODES_SHOWN}


def mfa_schemas(s: Settings) -> Json:
    """Request and answer bodies of the MFA paths."""
    return {
        "MfaRequired": obj({
            "mfa_required": {"type": "boolean", "const": True},
            "mfa_token": string(f"Finishes this sign-in at `login/mfa/`, within "
                                f"{s.mfa.login_ttl} s, once, with at most "
                                f"{s.mfa.max_attempts} codes.", maxLength=MFA_TOKEN_MAX),
            "methods": {"type": "array", "items": string(enum=["totp", "recovery_code"])},
        }, ["mfa_required", "mfa_token", "methods"],
            "The password was right and the account has a second factor: no tokens yet."),
        "MfaLoginRequest": {"oneOf": [
            obj({"mfa_token": string(minLength=1, maxLength=MFA_TOKEN_MAX), "method": METHOD,
                 "code": CODE}, ["mfa_token", "method", "code"], "A code."),
            obj({"mfa_token": string(minLength=1, maxLength=MFA_TOKEN_MAX),
                 "method": string(enum=["webauthn"]),
                 "credential": {"type": "object", "description": "The passkey's assertion "
                                "(`credential.toJSON()`), for the options of "
                                "`login/mfa/webauthn/options/`."}},
                ["mfa_token", "method", "credential"], "A passkey."),
        ]},
        "MfaStatus": obj({
            "methods": {"type": "array", "items": string(enum=["totp", "recovery_code"]),
                        "description": "What a sign-in asks for after the password; empty "
                                       "without a second factor."},
            "totp": obj({"enabled": {"type": "boolean"},
                         "pending": {"type": "boolean",
                                     "description": "An enrolment waits for its first code."},
                         "confirmed_at": {"type": ["string", "null"], "format": "date-time",
                                          "description": UTC_TIME}},
                        ["enabled", "pending", "confirmed_at"]),
            "recovery_codes_left": {"type": "integer", "minimum": 0},
            "enrolment_required": {"type": "boolean",
                                   "description": "The caller's role requires a second factor "
                                                  "(`[mfa] require_for_roles`) and has none."},
            "step_up_max_age": {"type": "integer", "description": "Seconds a sign-in or "
                                "`reauth/` counts as recent for sensitive operations."},
        }, ["methods", "totp", "recovery_codes_left", "enrolment_required", "step_up_max_age"]),
        "TotpEnrolment": obj({
            "secret": string("Base32, for typing into the app by hand."),
            "otpauth_uri": string("The `otpauth://totp/...` URI the QR code holds."),
            "qr_svg": string("The URI as a QR code: a standalone SVG document."),
        }, ["secret", "otpauth_uri", "qr_svg"]),
        "TotpConfirmRequest": obj({"code": CODE}, ["code"]),
        "TotpConfirmed": obj({
            "recovery_codes": {**CODE_LIST, "description": CODES_SHOWN + " Only for the first "
                               "factor; empty when an authenticator replaces another."},
            "access": string("A new access token of this session: `amr` adds `otp`, no "
                             "enrolment `scope`; `auth_time` as it was (adding a factor is "
                             "no new sign-in)."),
        }, ["recovery_codes", "access"]),
        "RecoveryCodes": obj({"recovery_codes": CODE_LIST}, ["recovery_codes"]),
        "ReauthRequest": {"oneOf": [
            obj({"method": string(enum=["password"]),
                 "password": string(minLength=1, maxLength=s.passwords.max_length)},
                ["password"], "The password (`method` may be left out)."),
            obj({"method": METHOD, "code": CODE}, ["method", "code"], "A second factor."),
            obj({"method": string(enum=["webauthn"]),
                 "credential": {"type": "object", "description": "A passkey's assertion, for "
                                "the options of `reauth/webauthn/options/`."}},
                ["method", "credential"], "A passkey."),
        ]},
        "Reauthenticated": obj({
            "access": string("A new access token: `auth_time` is now; the session's later "
                             "tokens (refresh) keep it."),
            "auth_time": {"type": "integer", "description": "Unix time of this proof."},
        }, ["access", "auth_time"]),
        "StepUpError": obj({
            "detail": string(), "code": string(enum=["step_up_required"]),
            "methods": {"type": "array", "items": string(), "description": "What `reauth/` "
                        "accepts from this account."},
        }, ["detail", "code", "methods"]),
    }


def mfa_paths(s: Settings) -> Json:
    bearer = ("BearerUnauthorized", "ServiceUnavailable")
    step_up = ("StepUpRequired",)
    limited = ("TooManyRequests",) if s.rate_limit.enabled or s.lockout.enabled else ()
    note, _ = throttle(s, "login", "submitted username or email")  # 429 even without: busy
    if s.lockout.enabled:
        note += (" Each code counts towards the lockout like a password "
                 f"([lockout] max_failures = {s.lockout.max_failures}); the password step "
                 "stays counted until its second step succeeds.")
    return {
        AUTH + "login/mfa/": {"post": operation(
            "loginMfa", "Finish a sign-in with a second factor",
            "With the `mfa_token` a `login/` answered for an account with a second factor. A "
            "TOTP code is accepted once, within one 30 s step of skew; a recovery code once, "
            "and mailed to the user as a security alert. 429 (Retry-After: 1) while another "
            "attempt with the same `mfa_token` is judged." + note,
            {"200": token_response("The user and a token pair, as `login/` answers.",
                                   "LoginResponse")},
            body="MfaLoginRequest",
            errors=("BadRequest", "MfaRefused", "TooManyRequests", "ServiceUnavailable"))},
        AUTH + "mfa/": {"get": operation(
            "mfaStatus", "My second factors", "Which methods a sign-in will ask for, and how "
            "many recovery codes are left.",
            {"200": response("The caller's second factors.", ref("schemas", "MfaStatus"))},
            errors=bearer, bearer=True, tag="mfa")},
        AUTH + "mfa/totp/": {
            "post": operation(
                "enrolTotp", "Start setting up an authenticator app",
                "A new secret, waiting for its first code (`mfa/totp/confirm/`); an "
                "authenticator in use stays until then. Wants a sign-in or `reauth/` within "
                f"{s.mfa.step_up_max_age} s from every account: a stolen session must not "
                "add a factor of its own.",
                {"201": response("The secret, its URI and QR code.",
                                 ref("schemas", "TotpEnrolment"),
                                 **{"Cache-Control": ref("headers", "CacheControl")})},
                errors=(*step_up, *bearer), bearer=True, tag="mfa"),
            "delete": operation(
                "disableTotp", "Turn the second factor off",
                "The authenticator and the recovery codes go. A role in "
                "`[mfa] require_for_roles` cannot (400 `non_field_errors`): set up a new "
                "authenticator instead. Mailed to the user.",
                {"204": response("No Content. The body is empty.")},
                errors=("BadRequest", *step_up, *bearer), bearer=True, tag="mfa")},
        AUTH + "mfa/totp/confirm/": {"post": operation(
            "confirmTotp", "Confirm the authenticator with its first code",
            "Turns it on (or replaces the one in use); the first factor of an account gets "
            f"its {RECOVERY_CODES} recovery codes. Within ten minutes of `POST mfa/totp/` and "
            f"a sign-in or `reauth/` within {s.mfa.step_up_max_age} s (403 "
            "`step_up_required`). A wrong code is a 400 on `code`, counted like a wrong "
            "password at re-authentication; no enrolment waiting, a 400 `non_field_errors`. "
            "Mailed to the user." + reauth_note(s),
            {"200": token_response("The recovery codes and a new access token.",
                                   "TotpConfirmed")},
            body="TotpConfirmRequest",
            errors=("BadRequest", *limited, *step_up, *bearer), bearer=True, tag="mfa")},
        AUTH + "mfa/recovery-codes/": {"post": operation(
            "regenerateRecoveryCodes", "New recovery codes",
            f"{RECOVERY_CODES} new codes; the old set stops working. 400 "
            "`non_field_errors` without a second factor. Mailed to the user.",
            {"200": token_response("The new codes.", "RecoveryCodes")},
            errors=("BadRequest", *step_up, *bearer), bearer=True, tag="mfa")},
        AUTH + "reauth/": {"post": operation(
            "reauthenticate", "Confirm it is you (step-up)",
            "The password, or a code of a second factor, again: the session counts as signed "
            f"in now for {s.mfa.step_up_max_age} s of sensitive operations (password change, "
            "account deletion, changing a factor, recovery codes, admin writes), which answer "
            "403 `step_up_required` otherwise, for accounts with a second factor. A wrong "
            "password is a 400 on `password`, a wrong code a 400 on `code`; both count "
            "against the account like failed logins." + reauth_note(s),
            {"200": token_response("A new access token with the new `auth_time`.",
                                   "Reauthenticated")},
            body="ReauthRequest",
            errors=("BadRequest", "TooManyRequests", *bearer), bearer=True, tag="mfa")},
    }
