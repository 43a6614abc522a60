"""The error bodies, the error responses made of them, and the response headers."""

from __future__ import annotations

from service.config import Settings
from service.http.openapi.build import Json, obj, ref, response, string


def error_schemas() -> Json:
    """The error bodies, in Django REST Framework's shapes."""
    return {
        "FieldErrors": {"type": "object", "minProperties": 1,
                        "description": "Messages by field name; errors not tied to a field "
                                       "under `non_field_errors`.",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}}},
        "Detail": obj({"detail": string()}, ["detail"]),
        "AuthError": obj({
            "detail": string(),
            "code": string("`token_not_valid` for every token refusal, `not_authenticated` when "
                           "no token is sent, `no_active_account` for wrong credentials; at "
                           "`login/mfa/`, `mfa_token_invalid` (sign in again) or "
                           "`mfa_code_invalid` (a wrong or used code)."),
            "reason": string("Why a token was refused (`token_expired`, `token_revoked`, "
                             "`password_changed`, `user_inactive`, `user_not_found`, "
                             "`bad_signature`, `wrong_token_type`, ...); "
                             "only with `token_not_valid`."),
        }, ["detail", "code"]),
    }


def error_responses(s: Settings) -> Json:
    """The error responses operations refer to by name (see build.STATUS)."""
    detail, auth_error = ref("schemas", "Detail"), ref("schemas", "AuthError")
    retry = {"Retry-After": ref("headers", "RetryAfter")}
    return {
        "BadRequest": response("Invalid input: messages by field, or `detail` when the body "
                               "cannot be parsed.",
                               {"oneOf": [ref("schemas", "FieldErrors"), detail]}),
        "InvalidCredentials": response("Wrong credentials or inactive account "
                                       "(`no_active_account`), always the same answer.",
                                       auth_error),
        "TokenRefused": response("Malformed, forged, expired or revoked refresh token "
                                 "(`token_not_valid`).", auth_error),
        "BearerUnauthorized": response("No token (`not_authenticated`) or a refused access "
                                       "token (`token_not_valid`).", auth_error,
                                       **{"WWW-Authenticate": ref("headers", "WWWAuthenticate")}),
        "EmailNotVerified": response("Right password, but the email is not verified yet "
                                     "(`code: email_not_verified`); only with "
                                     "`[auth] require_email_verification`.", auth_error),
        "Forbidden": response("Authenticated, but not allowed: the caller's current role is "
                              "not `admin`; or (a write, `[mfa] step_up_for_admin`) an admin "
                              "with a second factor who has not signed in recently "
                              "(`code: step_up_required`, see `reauth/`); or a token limited to "
                              "the enrolment of a second factor "
                              "(`code: mfa_enrolment_required`).",
                              {"oneOf": [detail, ref("schemas", "StepUpError")]}),
        "StepUpRequired": response("The account has a second factor and has not signed in "
                                   "recently (`code: step_up_required`): `reauth/`, then try "
                                   "again. 403, not 401: the session itself is fine.",
                                   ref("schemas", "StepUpError")),
        "PasskeyRefused": response("A passkey's assertion was refused (`code: "
                                   "webauthn_failed`); `reason` names the check that failed.",
                                   auth_error),
        "MfaRefused": response("`mfa_token_invalid`: the pending sign-in is unknown, expired, "
                               "used or out of attempts: sign in again. `mfa_code_invalid`: a "
                               "wrong or already used code; the `mfa_token` stays usable while "
                               "attempts remain.", auth_error),
        "NotFound": response('Unknown resource (`{"detail": "Not found."}`), or a page past '
                             'the last (`{"detail": "Invalid page."}`).', detail),
        "PayloadTooLarge": response(f"Body over {s.server.max_body_bytes} bytes "
                                    "(`[server] max_body_bytes`).", detail),
        "UnsupportedMediaType": response("Body that is not JSON.", detail),
        "TooManyRequests": response("Rate limit hit.", detail, **retry),
        "ServerError": response("Server fault; never a stack trace.", detail),
        "ServiceUnavailable": response("The database or Redis cannot be reached.", detail,
                                       **retry),
    }


def headers() -> Json:
    """The response headers the responses refer to."""
    return {
        "RetryAfter": {"description": "Seconds to wait before retrying.", "required": True,
                       "schema": {"type": "integer", "minimum": 1}},
        "WWWAuthenticate": {"description": "The Bearer challenge.", "required": True,
                            "schema": string(examples=['Bearer realm="api"'])},
        "CacheControl": {"description": "Responses with tokens are never cached.",
                         "required": True, "schema": string(const="no-store")},
    }

