"""The session, password change, email verification and "this wasn't me" paths."""

from __future__ import annotations

from service.config import Settings
from service.http.openapi.build import AUTH, Json, operation, ref, response, string, token_response
from service.http.openapi.notes import mail_cap, reauth_note, throttle


def security_paths(s: Settings) -> Json:
    """Sessions, logout everywhere, password change, email verification, not me."""
    bearer_errors = ("BearerUnauthorized", "ServiceUnavailable")
    return {
        AUTH + "sessions/": {"get": operation(
            "listSessions", "List my sessions",
            "Every live session of the caller (one per login), the current one marked.",
            {"200": response("The sessions.", ref("schemas", "SessionList"))},
            errors=bearer_errors, bearer=True, tag="sessions")},
        AUTH + "sessions/{sid}/": {"delete": {
            **operation("endSession", "End one of my sessions",
                        "Its access and refresh tokens are refused at once; another user's "
                        "session id is a 404.",
                        {"204": response("Ended. The body is empty.")},
                        errors=("NotFound", *bearer_errors), bearer=True, tag="sessions"),
            "parameters": [{"name": "sid", "in": "path", "required": True,
                            "schema": string()}]}},
        AUTH + "logout-all/": {"post": operation(
            "logoutAll", "End all my sessions",
            "Every session of the caller ends; all their tokens are refused at once.",
            {"205": response("Reset Content. The body is empty.")},
            errors=bearer_errors, bearer=True, tag="sessions")},
        AUTH + "password/change/": {"post": operation(
            "changePassword", "Change my password",
            "Needs the current password. Every other session ends and every earlier token is "
            "refused; this session goes on with the fresh pair returned. 429 (Retry-After: 1) "
            "while another password check of the same account is in progress. An account "
            "with a second factor also needs a recent sign-in (403 `step_up_required`, see "
            "`reauth/`)." + reauth_note(s),
            {"200": token_response("A fresh token pair for this session.", "TokenPair")},
            body="PasswordChangeRequest",
            errors=("BadRequest", "TooManyRequests", "StepUpRequired", *bearer_errors),
            bearer=True,
            tag="sessions")},
        AUTH + "verify-email/": {"post": operation(
            "verifyEmail", "Confirm an email address",
            "With the token from the verification email sent at registration (when "
            "`[auth] verify_emails` is on). Single use; an unknown, used or expired token is a "
            "400 on `token`.",
            {"200": response('`{"message": "Email verified"}`', ref("schemas", "Message"))},
            body="VerifyEmailRequest", errors=("BadRequest", "ServiceUnavailable"),
            tag="sessions")},
        AUTH + "verify-email/resend/": {"post": operation(
            "resendVerification", "Send the verification email again",
            "Answers the same 200 whether or not the email is known or already verified."
            + throttle(s, "password_reset", None)[0] + mail_cap(s),
            {"200": response('`{"message": "Verification email sent"}`',
                             ref("schemas", "Message"))},
            body="ResendVerificationRequest",
            errors=("BadRequest", *throttle(s, "password_reset", None)[1],
                    "ServiceUnavailable"), tag="sessions")},
        AUTH + "security/not-me/": {"post": operation(
            "notMe", "This wasn't me",
            "The confirming POST behind the link in a security alert (a sign-in from a new "
            "device, or a refresh token used twice): ends every session of the account and "
            "emails a password reset link. The link itself (a GET a mail scanner may follow) "
            "does nothing. Single use; an unknown or used token is a 400 on `token`."
            + throttle(s, "password_reset", None)[0],
            {"200": response("Done.", ref("schemas", "Message"))},
            body="NotMeRequest",
            errors=("BadRequest", *throttle(s, "password_reset", None)[1],
                    "ServiceUnavailable"), tag="sessions")},
    }

